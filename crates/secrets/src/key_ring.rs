//! Envelope encryption: stored values are sealed by **data keys** (random AES-256-GCM keys), and
//! each data key is stored wrapped (sealed) by the master key. Rotating a data key re-seals
//! values without touching the master key; rotating the master key re-wraps the few data keys.
//!
//! A [`KeyRing`] holds the master key and the data keys an instance knows. It seals with the
//! current data key and opens a value with whichever key its header names: a data key, or the
//! master key itself (values sealed before data keys existed stay readable as they are).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use crate::OpenError;
use crate::master_key::MasterKey;

/// The associated data that binds a wrapped data key to its id.
fn wrap_aad(id: &str) -> Vec<u8> {
    format!("data-key:{id}").into_bytes()
}

/// A data key: seals stored values. Its id is the first 8 hex characters of its SHA-256, as a
/// master key's is. `Debug` shows the id only.
#[derive(Clone, Debug)]
pub struct DataKey(MasterKey);

/// Why a wrapped data key did not open. Never holds key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    #[error("data key {id} does not open with the master key: {source}")]
    Open { id: String, source: OpenError },
    #[error("data key {id} opens to a key of another id or length: the store was altered")]
    Mismatch { id: String },
}

impl DataKey {
    /// A new random data key.
    pub fn generate() -> DataKey {
        DataKey(MasterKey::generate())
    }

    /// The key id. Safe to show.
    pub fn id(&self) -> &str {
        self.0.id()
    }

    /// The key sealed by `master`, bound to its id: what the store keeps.
    pub fn wrap(&self, master: &MasterKey) -> Vec<u8> {
        master.seal(self.0.key_bytes(), &wrap_aad(self.id()))
    }

    /// Opens what [`DataKey::wrap`] made for `id`.
    pub fn unwrap(master: &MasterKey, id: &str, wrapped: &[u8]) -> Result<DataKey, UnwrapError> {
        let bytes =
            master.open(wrapped, &wrap_aad(id)).map_err(|source| UnwrapError::Open { id: id.to_owned(), source })?;
        let bytes: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| UnwrapError::Mismatch { id: id.to_owned() })?;
        let key = MasterKey::from_bytes(bytes);
        if key.id() != id {
            return Err(UnwrapError::Mismatch { id: id.to_owned() });
        }
        Ok(DataKey(key))
    }
}

/// The keys an instance seals and opens with. Shared between threads; a reload replaces the
/// data keys at once.
#[derive(Debug)]
pub struct KeyRing {
    master: MasterKey,
    data: RwLock<Arc<DataKeys>>,
}

#[derive(Debug, Default)]
struct DataKeys {
    current: Option<DataKey>,
    by_id: HashMap<String, DataKey>,
}

impl KeyRing {
    /// A ring of the master key alone: it seals with the master key until [`KeyRing::set`]
    /// gives it a current data key.
    pub fn new(master: MasterKey) -> KeyRing {
        KeyRing { master, data: RwLock::new(Arc::default()) }
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Replaces the data keys: `current` seals from now on; `others` (retiring keys) still open.
    pub fn set(&self, current: Option<DataKey>, others: Vec<DataKey>) {
        let mut by_id: HashMap<String, DataKey> = others.into_iter().map(|key| (key.id().to_owned(), key)).collect();
        if let Some(key) = &current {
            by_id.insert(key.id().to_owned(), key.clone());
        }
        let keys = Arc::new(DataKeys { current, by_id });
        *self.data.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = keys;
    }

    fn keys(&self) -> Arc<DataKeys> {
        self.data.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The id of the key that seals now: the current data key's, or the master key's.
    pub fn current_id(&self) -> String {
        self.keys().current.as_ref().map_or_else(|| self.master.id().to_owned(), |key| key.id().to_owned())
    }

    /// Whether the ring can open values sealed by key `id`.
    pub fn holds(&self, id: &str) -> bool {
        id == self.master.id() || self.keys().by_id.contains_key(id)
    }

    /// Seals with the current key (see [`MasterKey::seal`] for the layout).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        match &self.keys().current {
            Some(key) => key.0.seal(plaintext, aad),
            None => self.master.seal(plaintext, aad),
        }
    }

    /// Opens a value with the key its header names.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let Some(id) = MasterKey::key_id_of(sealed) else {
            // Truncated or of an unknown version: the master key says which.
            return self.master.open(sealed, aad);
        };
        if id == self.master.id() {
            return self.master.open(sealed, aad);
        }
        match self.keys().by_id.get(id) {
            Some(key) => key.0.open(sealed, aad),
            None => {
                let found =
                    if id.bytes().all(|b| b.is_ascii_hexdigit()) { id.to_owned() } else { "(not a key id)".to_owned() };
                Err(OpenError::UnknownKey { found })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAINTEXT: &[u8] = b"{\"api_key\":\"s3cr3t-value\"}";

    #[test]
    fn a_ring_without_data_keys_seals_with_the_master_key() {
        let master = MasterKey::generate();
        let ring = KeyRing::new(master.clone());
        assert_eq!(ring.current_id(), master.id());
        let sealed = ring.seal(PLAINTEXT, b"aad");
        assert_eq!(MasterKey::key_id_of(&sealed), Some(master.id()));
        assert_eq!(&*master.open(&sealed, b"aad").unwrap(), PLAINTEXT);
    }

    #[test]
    fn seals_with_the_current_data_key_and_opens_every_key_it_holds() {
        let master = MasterKey::generate();
        let ring = KeyRing::new(master.clone());
        let legacy = ring.seal(PLAINTEXT, b"aad");
        let (old, new) = (DataKey::generate(), DataKey::generate());
        ring.set(Some(old.clone()), Vec::new());
        let by_old = ring.seal(PLAINTEXT, b"aad");
        assert_eq!(MasterKey::key_id_of(&by_old), Some(old.id()));
        ring.set(Some(new.clone()), vec![old.clone()]);
        let by_new = ring.seal(PLAINTEXT, b"aad");
        assert_eq!(MasterKey::key_id_of(&by_new), Some(new.id()));
        assert_eq!(ring.current_id(), new.id());
        for sealed in [&legacy, &by_old, &by_new] {
            assert_eq!(&*ring.open(sealed, b"aad").unwrap(), PLAINTEXT);
            // Still bound to its row.
            assert_eq!(ring.open(sealed, b"other").unwrap_err(), OpenError::AuthenticationFailed);
        }
        assert!(ring.holds(master.id()) && ring.holds(old.id()) && ring.holds(new.id()));
    }

    #[test]
    fn an_unknown_key_id_is_a_clear_error() {
        let ring = KeyRing::new(MasterKey::generate());
        let elsewhere = DataKey::generate();
        let other = KeyRing::new(MasterKey::generate());
        other.set(Some(elsewhere.clone()), Vec::new());
        let sealed = other.seal(PLAINTEXT, b"aad");
        let error = ring.open(&sealed, b"aad").unwrap_err();
        assert_eq!(error, OpenError::UnknownKey { found: elsewhere.id().to_owned() });
        assert!(error.to_string().contains(elsewhere.id()), "{error}");
        assert!(!ring.holds(elsewhere.id()));
        // A retired key is forgotten at the next set.
        ring.set(Some(elsewhere.clone()), Vec::new());
        assert!(ring.open(&sealed, b"aad").is_ok());
        ring.set(Some(DataKey::generate()), Vec::new());
        assert!(matches!(ring.open(&sealed, b"aad"), Err(OpenError::UnknownKey { .. })));
        assert_eq!(ring.open(b"v", b"aad").unwrap_err(), OpenError::Truncated);
    }

    #[test]
    fn a_wrapped_data_key_opens_only_with_its_master_key_and_id() {
        let (master, other) = (MasterKey::generate(), MasterKey::generate());
        let key = DataKey::generate();
        let wrapped = key.wrap(&master);
        assert!(!wrapped.windows(32).any(|w| w == key.0.key_bytes()));
        assert_eq!(DataKey::unwrap(&master, key.id(), &wrapped).unwrap().id(), key.id());
        assert!(matches!(DataKey::unwrap(&other, key.id(), &wrapped), Err(UnwrapError::Open { .. })));
        assert!(matches!(DataKey::unwrap(&master, "00000000", &wrapped), Err(UnwrapError::Open { .. })));
        // Wrapped under another id's associated data but claiming that id: the key's own id differs.
        let forged = master.seal(key.0.key_bytes(), &wrap_aad("00000000"));
        assert_eq!(
            DataKey::unwrap(&master, "00000000", &forged).unwrap_err(),
            UnwrapError::Mismatch { id: "00000000".to_owned() }
        );
        let shown = format!("{key:?}");
        assert!(shown.contains(key.id()) && shown.contains("[redacted]"), "{shown}");
    }
}
