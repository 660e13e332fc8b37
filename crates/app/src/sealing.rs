//! Every value the store keeps sealed, sealed and opened in one place, each with the
//! associated data that binds it to its row: a connection's secrets (its id), its OAuth tokens
//! (`<id>:tokens`), a connector's OAuth client secret (the connector id), a sign-in's PKCE
//! verifier (the state's hash). Opened values live only in redacting types.

use std::collections::BTreeMap;

use portico_secrets::SecretString;
use portico_store::{ConnectionRecord, ConnectorRecord, SealedBytes};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::error::{Error, Result};

/// A connection's secret values, opened. Debug shows names only.
pub type Secrets = BTreeMap<String, SecretString>;

impl App {
    /// Seals a connection's secret values; `None` when there are none.
    pub(crate) fn seal_secrets(&self, connection_id: &str, secrets: &BTreeMap<String, String>) -> Option<SealedBytes> {
        if secrets.is_empty() {
            return None;
        }
        let mut plaintext = serde_json::to_vec(secrets).unwrap_or_default();
        let sealed = self.master_key.seal(&plaintext, connection_id.as_bytes());
        plaintext.fill(0);
        Some(SealedBytes(sealed))
    }

    pub(crate) fn open_secrets(&self, record: &ConnectionRecord) -> Result<Secrets> {
        let Some(sealed) = &record.secrets else { return Ok(Secrets::new()) };
        let plaintext = self.master_key.open(&sealed.0, record.id.as_bytes()).map_err(|e| {
            tracing::error!(connection = %record.id, error = %e, "cannot open a connection's secrets");
            Error::Internal
        })?;
        serde_json::from_slice(&plaintext).map_err(|_| {
            tracing::error!(connection = %record.id, "a connection's secrets are not a JSON object");
            Error::Internal
        })
    }

    /// The names of a connection's secret values: all a view may say of them.
    pub(crate) fn secret_names(&self, record: &ConnectionRecord) -> Result<Vec<String>> {
        Ok(self.open_secrets(record)?.into_keys().collect())
    }

    pub(crate) fn seal_tokens(&self, connection_id: &str, tokens: &StoredTokens) -> SealedBytes {
        let mut plaintext = serde_json::to_vec(tokens).unwrap_or_default();
        let sealed = self.master_key.seal(&plaintext, &tokens_aad(connection_id));
        plaintext.fill(0);
        SealedBytes(sealed)
    }

    pub(crate) fn open_tokens(&self, record: &ConnectionRecord) -> Result<Option<StoredTokens>> {
        let Some(sealed) = &record.tokens else { return Ok(None) };
        let plaintext = self.master_key.open(&sealed.0, &tokens_aad(&record.id)).map_err(|e| {
            tracing::error!(connection = %record.id, error = %e, "cannot open a connection's tokens");
            Error::Internal
        })?;
        serde_json::from_slice(&plaintext).map(Some).map_err(|_| Error::Internal)
    }

    pub(crate) fn seal_client_secret(&self, connector_id: &str, secret: &str) -> SealedBytes {
        SealedBytes(self.master_key.seal(secret.as_bytes(), connector_id.as_bytes()))
    }

    pub(crate) fn open_client_secret(&self, connector: &ConnectorRecord) -> Result<Option<SecretString>> {
        let Some(sealed) = &connector.oauth_client_secret else { return Ok(None) };
        let plaintext = self.master_key.open(&sealed.0, connector.id.as_bytes()).map_err(|e| {
            tracing::error!(connector = %connector.id, error = %e, "cannot open a connector's client secret");
            Error::Internal
        })?;
        Ok(Some(SecretString::from(String::from_utf8_lossy(&plaintext).into_owned())))
    }

    pub(crate) fn seal_verifier(&self, state_hash: &str, verifier: &SecretString) -> SealedBytes {
        SealedBytes(self.master_key.seal(verifier.expose().as_bytes(), state_hash.as_bytes()))
    }

    pub(crate) fn open_verifier(&self, state_hash: &str, sealed: &SealedBytes) -> Result<SecretString> {
        let plaintext = self.master_key.open(&sealed.0, state_hash.as_bytes()).map_err(|_| Error::Internal)?;
        Ok(SecretString::from(String::from_utf8_lossy(&plaintext).into_owned()))
    }
}

impl App {
    /// Seals bytes bound to `associated` (a row's id).
    pub(crate) fn seal_bytes(&self, plaintext: &[u8], associated: &[u8]) -> SealedBytes {
        SealedBytes(self.master_key.seal(plaintext, associated))
    }

    pub(crate) fn open_bytes(
        &self,
        sealed: &SealedBytes,
        associated: &[u8],
    ) -> Result<portico_secrets::Zeroizing<Vec<u8>>> {
        self.master_key.open(&sealed.0, associated).map_err(|e| {
            tracing::error!(error = %e, "cannot open a sealed value");
            Error::Internal
        })
    }
}

fn tokens_aad(connection_id: &str) -> Vec<u8> {
    format!("{connection_id}:tokens").into_bytes()
}

/// A connection's tokens as sealed at rest.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredTokens {
    pub(crate) access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) instance_url: Option<String>,
    pub(crate) obtained_at: portico_store::Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lifetime_secs: Option<u64>,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens").field("obtained_at", &self.obtained_at).finish_non_exhaustive()
    }
}
