//! Every value the store keeps sealed, sealed and opened in one place, each with the
//! associated data that binds it to its row ([`aad`]): a connection's secrets (its id), its OAuth
//! tokens (`<id>:tokens`), a connector's OAuth client secret (the connector id), a sign-in's PKCE
//! verifier (the state's hash) and return address (`<hash>:return`), a webhook's signing secrets
//! (its id). Opened values live only in redacting types.
//!
//! Values are sealed by the key ring's current data key and opened by the key their header
//! names (see `portico_secrets::KeyRing`); a key this instance does not know yet (made by a
//! rotation or another instance a moment ago) makes it reload the data keys once.

use std::collections::BTreeMap;

use portico_secrets::{OpenError, SecretString, Zeroizing};
use portico_store::{ConnectionRecord, ConnectorRecord, SealedBytes, SealedColumn};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::error::{Error, Result};

/// A connection's secret values, opened. Debug shows names only.
pub type Secrets = BTreeMap<String, SecretString>;

/// The associated data of a value of `column` in row `row`: what binds it to that row. The one
/// place this is decided, for sealing, opening and re-sealing in a key rotation.
pub(crate) fn aad(column: SealedColumn, row: &str) -> Vec<u8> {
    match column {
        SealedColumn::ConnectionSecrets
        | SealedColumn::ConnectorClientSecret
        | SealedColumn::SignInVerifier
        | SealedColumn::WebhookSecrets => row.as_bytes().to_vec(),
        SealedColumn::ConnectionTokens => format!("{row}:tokens").into_bytes(),
        SealedColumn::SignInReturnUrl => format!("{row}:return").into_bytes(),
    }
}

impl App {
    /// Seals a value of `column` for row `row` with the current key.
    pub(crate) fn seal_value(&self, column: SealedColumn, row: &str, plaintext: &[u8]) -> SealedBytes {
        SealedBytes(self.ring.seal(plaintext, &aad(column, row)))
    }

    /// Opens a value of `column` in row `row`. A key this instance does not hold makes it read
    /// the data keys again, once: another instance or a rotation may have just made it.
    pub(crate) async fn open_value(
        &self,
        column: SealedColumn,
        row: &str,
        sealed: &SealedBytes,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let aad = aad(column, row);
        let opened = match self.ring.open(&sealed.0, &aad) {
            Err(OpenError::UnknownKey { .. }) => {
                if let Err(error) = crate::data_keys::load(self.store.as_ref(), &self.ring).await {
                    tracing::error!("cannot read the data keys again: {error:#}");
                }
                self.ring.open(&sealed.0, &aad)
            }
            other => other,
        };
        opened.map_err(|error| {
            tracing::error!(column = column.name(), row, %error, "cannot open a sealed value");
            Error::Internal
        })
    }

    /// Seals a connection's secret values; `None` when there are none.
    pub(crate) fn seal_secrets(&self, connection_id: &str, secrets: &BTreeMap<String, String>) -> Option<SealedBytes> {
        if secrets.is_empty() {
            return None;
        }
        let plaintext = Zeroizing::new(serde_json::to_vec(secrets).unwrap_or_default());
        Some(self.seal_value(SealedColumn::ConnectionSecrets, connection_id, &plaintext))
    }

    pub(crate) async fn open_secrets(&self, record: &ConnectionRecord) -> Result<Secrets> {
        let Some(sealed) = &record.secrets else { return Ok(Secrets::new()) };
        let plaintext = self.open_value(SealedColumn::ConnectionSecrets, &record.id, sealed).await?;
        serde_json::from_slice(&plaintext).map_err(|_| {
            tracing::error!(connection = %record.id, "a connection's secrets are not a JSON object");
            Error::Internal
        })
    }

    /// The names of a connection's secret values: all a view may say of them.
    pub(crate) async fn secret_names(&self, record: &ConnectionRecord) -> Result<Vec<String>> {
        Ok(self.open_secrets(record).await?.into_keys().collect())
    }

    pub(crate) fn seal_tokens(&self, connection_id: &str, tokens: &StoredTokens) -> SealedBytes {
        let plaintext = Zeroizing::new(serde_json::to_vec(tokens).unwrap_or_default());
        self.seal_value(SealedColumn::ConnectionTokens, connection_id, &plaintext)
    }

    pub(crate) async fn open_tokens(&self, record: &ConnectionRecord) -> Result<Option<StoredTokens>> {
        let Some(sealed) = &record.tokens else { return Ok(None) };
        let plaintext = self.open_value(SealedColumn::ConnectionTokens, &record.id, sealed).await?;
        serde_json::from_slice(&plaintext).map(Some).map_err(|_| Error::Internal)
    }

    pub(crate) fn seal_client_secret(&self, connector_id: &str, secret: &str) -> SealedBytes {
        self.seal_value(SealedColumn::ConnectorClientSecret, connector_id, secret.as_bytes())
    }

    pub(crate) async fn open_client_secret(&self, connector: &ConnectorRecord) -> Result<Option<SecretString>> {
        let Some(sealed) = &connector.oauth_client_secret else { return Ok(None) };
        let plaintext = self.open_value(SealedColumn::ConnectorClientSecret, &connector.id, sealed).await?;
        Ok(Some(SecretString::from(String::from_utf8_lossy(&plaintext).into_owned())))
    }

    pub(crate) fn seal_verifier(&self, state_hash: &str, verifier: &SecretString) -> SealedBytes {
        self.seal_value(SealedColumn::SignInVerifier, state_hash, verifier.expose().as_bytes())
    }

    pub(crate) async fn open_verifier(&self, state_hash: &str, sealed: &SealedBytes) -> Result<SecretString> {
        let plaintext = self.open_value(SealedColumn::SignInVerifier, state_hash, sealed).await?;
        Ok(SecretString::from(String::from_utf8_lossy(&plaintext).into_owned()))
    }
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
