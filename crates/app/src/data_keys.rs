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
use portico_store::{
    Change, DataKeyRecord, DataKeyState, Reseal, Rewrap, SealedBytes, SealedColumn, Store, now_millis,
};

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
        // An error leaves the ring as it is: this process keeps sealing and opening with the
        // keys it holds, and says why it cannot follow the store.
        let key = DataKey::unwrap(ring.master(), &record.id, &record.wrapped.0).with_context(|| {
            format!(
                "data key {} in the store does not open with this process's master key (id {}): if the \
                 master key was rotated (`portico keys rotate-master`), restart this instance with the new \
                 one; meanwhile it keeps the data keys it holds",
                record.id,
                ring.master().id()
            )
        })?;
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

/// What a master-key rotation did: key ids only.
#[derive(Debug, Clone)]
pub struct MasterRotation {
    /// The master key that wrapped the data keys before.
    pub from: String,
    /// The master key that wraps them now.
    pub to: String,
    /// The data keys re-wrapped, current first.
    pub data_keys: Vec<String>,
}

/// Re-wraps every data key under `new_master` and seals the store's master-key check with it,
/// in one transaction. Refused while a value is still sealed by the current master key itself
/// (`portico keys rotate` re-seals it under a data key first): the new key could not open it.
/// Processes running with the old master key keep the data keys they hold; each must be
/// restarted with the new one.
pub async fn rotate_master(
    store: &dyn Store,
    ring: &KeyRing,
    new_master: &MasterKey,
) -> anyhow::Result<MasterRotation> {
    let old_id = ring.master().id().to_owned();
    if new_master.id() == old_id {
        bail!("the new master key is the current one (id {old_id}): give another key");
    }
    let legacy = sealed_by(store, &old_id).await?;
    if legacy > 0 {
        bail!(
            "{legacy} stored value(s) are sealed by master key {old_id} itself (sealed before data keys existed), \
             which the new master key could not open: run `portico keys rotate` first, which re-seals them under \
             a data key, then run `portico keys rotate-master` again"
        );
    }
    let records = store.data_keys().await.context("cannot read the data keys")?;
    let mut rewrapped = Vec::with_capacity(records.len());
    for record in records {
        let key = DataKey::unwrap(ring.master(), &record.id, &record.wrapped.0)?;
        rewrapped.push(Rewrap { id: record.id, old: record.wrapped, new: SealedBytes(key.wrap(new_master)) });
    }
    let check = crate::bootstrap::KEY_CHECK;
    let old_check = store
        .setting(check)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the store has no master-key check: start Portico on it once first"))?;
    let new_check = crate::bootstrap::key_check_value(new_master);
    if !store.rewrap_data_keys(&rewrapped, check, &old_check, &new_check).await? {
        bail!(
            "the data keys or the master-key check changed while the keys were re-wrapped (a `portico keys \
             rotate` under way?); nothing was written: run `portico keys rotate-master` again"
        );
    }
    tell_instances(store).await;
    // What a restart with the new key will do: the check and every data key open with it.
    crate::bootstrap::check_master_key(store, new_master).await?;
    load(store, &KeyRing::new(new_master.clone())).await?;
    Ok(MasterRotation {
        from: old_id,
        to: new_master.id().to_owned(),
        data_keys: rewrapped.into_iter().map(|key| key.id).collect(),
    })
}

/// How many stored values name key `id` in their header.
async fn sealed_by(store: &dyn Store, id: &str) -> anyhow::Result<u64> {
    let header = header_of(id);
    let mut count = 0;
    for column in SealedColumn::ALL {
        for (prefix, values) in store.count_sealed(column, SEALED_HEADER_LEN).await? {
            if prefix == header {
                count += values;
            }
        }
    }
    Ok(count)
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
