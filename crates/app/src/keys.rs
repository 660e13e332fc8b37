//! API keys: who a key names, and keys' lifecycle.

use crate::error::{Error, Result};
use crate::{Actor, App, Principal};

impl App {
    /// The principal an API key names; a missing, revoked or expired key is unauthenticated.
    /// Known keys come from memory; a miss asks the store, so that a key made elsewhere (by
    /// `portico tenant key`, or on another instance) works at once.
    pub async fn authenticate(&self, key: &str) -> Result<Principal> {
        let digest = portico_secrets::api_key_digest(key);
        self.authenticate_digest(&digest).await
    }

    /// [`App::authenticate`] by the SHA-256 of the key: what a portal session keeps.
    pub async fn authenticate_digest(&self, digest: &[u8; 32]) -> Result<Principal> {
        let now = portico_store::now_millis();
        if let Some(principal) = self.keys.get(digest) {
            return if principal.expired(now) { Err(Error::Unauthenticated) } else { Ok(principal) };
        }
        let generation = self.keys.generation();
        let record =
            self.store.api_key_by_hash(&portico_secrets::digest_hex(digest)).await?.ok_or(Error::Unauthenticated)?;
        let principal = Principal { actor: Actor::Key(record.id.into()), ..Principal::operator(&record.tenant_id) };
        self.keys.insert(*digest, principal.clone(), generation);
        Ok(principal)
    }
}
