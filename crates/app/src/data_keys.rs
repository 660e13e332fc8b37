//! The data keys that seal stored values, and their online rotation.
//!
//! The master key (a file or `PORTICO_MASTER_KEY`) only wraps data keys; the data keys, wrapped,
//! are in the store (`data_keys`), one current. Every instance keeps them in its [`KeyRing`]:
//! read at start-up (the first instance on a store without one makes it), again on a
//! [`Change::DataKeys`] notice, every [`POLL_INTERVAL`], and when a value names a key it does
//! not hold. Values sealed by the master key itself, before data keys existed, stay readable.
//!
//! A rotation ([`rotate`]) makes a new current key and marks the old one retiring in one
//! transaction, re-seals every value not sealed by the new key in batches (compare-and-set: a
//! value an instance wrote meanwhile is left for the next pass), passes again until none is
//! left and at least [`DEFAULT_GRACE`] has gone by since the switch (every instance seals with
//! the new key by then), then deletes the retiring key. Run again after an interruption, it
//! resumes: while a key is retiring no new key is made.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use portico_secrets::{DataKey, KeyRing, MasterKey, OpenError, SEALED_HEADER_LEN, SEALED_VERSION, header_of};
use portico_store::{Change, DataKeyRecord, DataKeyState, Reseal, SealedBytes, SealedColumn, Store, now_millis};

use crate::sealing::aad;

/// How often an instance reads the data keys again.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How long a rotation waits after the switch before it may retire the old key: by then every
/// instance has read the keys again and seals with the new one.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2 * POLL_INTERVAL.as_secs());
/// Values re-sealed per transaction.
pub const DEFAULT_BATCH: u32 = 500;
/// Passes before a rotation gives up on values that keep being written with an old key.
const MAX_PASSES: u32 = 100;

/// A ring with the store's data keys; the first on a store without any makes one.
pub async fn open_ring(store: &dyn Store, master: MasterKey) -> anyhow::Result<Arc<KeyRing>> {
    let ring = Arc::new(KeyRing::new(master));
    load(store, &ring).await?;
    Ok(ring)
}

/// Reads the data keys into `ring`, making the first one if the store has none (insert if
/// absent, then read back: instances starting together agree on one).
pub async fn load(store: &dyn Store, ring: &KeyRing) -> anyhow::Result<()> {
    let mut keys = store.data_keys().await.context("cannot read the data keys")?;
    if keys.is_empty() {
        let key = DataKey::generate();
        store.insert_first_data_key(&record_of(&key, ring.master(), DataKeyState::Current)).await?;
        keys = store.data_keys().await.context("cannot read the data keys")?;
    }
    let (mut current, mut others) = (None, Vec::new());
    for record in keys {
        let key = DataKey::unwrap(ring.master(), &record.id, &record.wrapped.0)?;
        match record.state {
            DataKeyState::Current => current = Some(key),
            DataKeyState::Retiring => others.push(key),
        }
    }
    ring.set(current, others);
    Ok(())
}

fn record_of(key: &DataKey, master: &MasterKey, state: DataKeyState) -> DataKeyRecord {
    DataKeyRecord { id: key.id().to_owned(), wrapped: SealedBytes(key.wrap(master)), state, created_at: now_millis() }
}

/// How a rotation runs.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    pub batch_size: u32,
    /// See [`DEFAULT_GRACE`].
    pub grace: Duration,
    /// Stop with an error after this many batches (to test that a rotation resumes).
    pub stop_after_batches: Option<u64>,
}

impl Default for RotateOptions {
    fn default() -> Self {
        RotateOptions { batch_size: DEFAULT_BATCH, grace: DEFAULT_GRACE, stop_after_batches: None }
    }
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The key that seals every value now.
    pub current: String,
    /// A rotation left unfinished was finished, rather than a new one started.
    pub resumed: bool,
    pub resealed: u64,
    pub batches: u64,
    pub passes: u32,
    /// The keys deleted at the end.
    pub retired: Vec<String>,
}

/// Rotates the data key while instances keep serving (see the module's documentation).
/// `progress` hears each step, in words an operator reads.
pub async fn rotate(
    store: &dyn Store,
    ring: &KeyRing,
    options: &RotateOptions,
    progress: &mut (dyn FnMut(String) + Send),
) -> anyhow::Result<Rotation> {
    load(store, ring).await?;
    let keys = store.data_keys().await?;
    let retiring: Vec<String> =
        keys.iter().filter(|key| key.state == DataKeyState::Retiring).map(|key| key.id.clone()).collect();
    let mut resumed = !retiring.is_empty();
    if resumed {
        progress(format!(
            "resuming the rotation to data key {}: key(s) {} retiring",
            ring.current_id(),
            retiring.join(", ")
        ));
    } else {
        let key = loop {
            // Ids are 32 bits: never reuse one a value may still name.
            let key = DataKey::generate();
            if !ring.holds(key.id()) {
                break key;
            }
        };
        if store.start_key_rotation(&record_of(&key, ring.master(), DataKeyState::Current)).await? {
            progress(format!("data key {} is current; key {} is retiring", key.id(), ring.current_id()));
        } else {
            resumed = true;
            progress("another rotation started meanwhile: finishing it".to_owned());
        }
    }
    let switched = Instant::now();
    tell_instances(store).await;
    load(store, ring).await?;
    let current = ring.current_id();
    let header = header_of(&current);

    let mut rotation =
        Rotation { current: current.clone(), resumed, resealed: 0, batches: 0, passes: 0, retired: Vec::new() };
    loop {
        rotation.passes += 1;
        let listed = reseal_pass(store, ring, &header, options, &mut rotation).await?;
        if listed == 0 {
            let waited = switched.elapsed();
            if waited >= options.grace {
                break;
            }
            progress(format!(
                "every value is sealed by key {current}; waiting {:.0} s so that every instance seals with it",
                (options.grace - waited).as_secs_f64()
            ));
            tokio::time::sleep(options.grace - waited).await;
            continue;
        }
        progress(format!("pass {}: {} value(s) re-sealed so far", rotation.passes, rotation.resealed));
        if rotation.passes >= MAX_PASSES {
            bail!(
                "values are still being sealed with an old key after {MAX_PASSES} passes: is an instance of an \
                 older Portico running? Run `portico keys rotate` again to finish"
            );
        }
    }
    let retiring: Vec<String> = store
        .data_keys()
        .await?
        .into_iter()
        .filter(|key| key.state == DataKeyState::Retiring)
        .map(|key| key.id)
        .collect();
    store.delete_retiring_data_keys().await?;
    tell_instances(store).await;
    load(store, ring).await?;
    rotation.retired = retiring;
    Ok(rotation)
}

async fn tell_instances(store: &dyn Store) {
    if let Err(error) = store.publish_change(&Change::DataKeys).await {
        // They read the keys again within the poll interval all the same.
        tracing::warn!(%error, "cannot tell the instances about the data keys");
    }
}

/// One pass over every sealed column: each value not sealed by the current key (`header`)
/// re-sealed by it. How many values were listed.
async fn reseal_pass(
    store: &dyn Store,
    ring: &KeyRing,
    header: &[u8],
    options: &RotateOptions,
    rotation: &mut Rotation,
) -> anyhow::Result<u64> {
    let mut listed = 0;
    for column in SealedColumn::ALL {
        let mut after = String::new();
        loop {
            let values = store.list_sealed(column, header, &after, options.batch_size.max(1)).await?;
            let Some(last) = values.last() else { break };
            after = last.row.clone();
            listed += values.len() as u64;
            let mut batch = Vec::with_capacity(values.len());
            for value in values {
                let associated = aad(column, &value.row);
                let plaintext = match ring.open(&value.sealed.0, &associated) {
                    // A key made after this process read them (by another rotation?).
                    Err(OpenError::UnknownKey { .. }) => {
                        load(store, ring).await?;
                        ring.open(&value.sealed.0, &associated)
                    }
                    other => other,
                }
                .with_context(|| format!("cannot open the value of {} in row {}", column.name(), value.row))?;
                let new = SealedBytes(ring.seal(&plaintext, &associated));
                batch.push(Reseal { row: value.row, old: value.sealed, new });
            }
            rotation.resealed += store.reseal(column, &batch).await?;
            rotation.batches += 1;
            if options.stop_after_batches.is_some_and(|stop| rotation.batches >= stop) {
                bail!(
                    "stopped after {} batch(es) as asked; run `portico keys rotate` again to finish",
                    rotation.batches
                );
            }
        }
    }
    Ok(listed)
}

/// A key and how many stored values it seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub id: String,
    /// `current`, `retiring`, `master` (values sealed before data keys existed) or `unknown`
    /// (a key this store does not hold: such values cannot be opened).
    pub state: &'static str,
    pub values: u64,
}

/// The data keys, the master key and every other key a stored value names, with the number
/// of values each seals.
pub async fn status(store: &dyn Store, ring: &KeyRing) -> anyhow::Result<Vec<KeyStatus>> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for column in SealedColumn::ALL {
        for (prefix, count) in store.count_sealed(column, SEALED_HEADER_LEN).await? {
            let id = match prefix.strip_prefix(SEALED_VERSION.as_slice()).map(std::str::from_utf8) {
                Some(Ok(id)) if prefix.len() == SEALED_HEADER_LEN && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    id.to_owned()
                }
                _ => "(unknown format)".to_owned(),
            };
            *counts.entry(id).or_default() += count;
        }
    }
    let mut statuses: Vec<KeyStatus> = store
        .data_keys()
        .await?
        .into_iter()
        .map(|key| KeyStatus { values: counts.remove(&key.id).unwrap_or(0), id: key.id, state: key.state.as_str() })
        .collect();
    let master = ring.master().id().to_owned();
    statuses.push(KeyStatus { values: counts.remove(&master).unwrap_or(0), id: master, state: "master" });
    statuses.extend(counts.into_iter().map(|(id, values)| KeyStatus { id, state: "unknown", values }));
    Ok(statuses)
}
