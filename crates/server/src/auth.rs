//! Who is calling: `Authorization: Bearer <api key>` → tenant.
//!
//! Keys are high-entropy, so a SHA-256 of the key is the lookup key (no password hash). Known
//! keys are kept in memory; a miss falls back to the store, so that a key created by
//! `portico tenant key` while the server runs works at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use portico_store::Store;

use crate::error::ApiError;
use crate::state::AppState;

/// Known keys by the SHA-256 of the key.
#[derive(Default)]
pub struct ApiKeyCache {
    by_digest: RwLock<HashMap<[u8; 32], Caller>>,
}

impl ApiKeyCache {
    pub async fn resolve(&self, store: &dyn Store, key: &str) -> Result<Option<Caller>, ApiError> {
        let digest = portico_secrets::api_key_digest(key);
        if let Some(caller) = self.by_digest.read().unwrap_or_else(|e| e.into_inner()).get(&digest) {
            return Ok(Some(caller.clone()));
        }
        let Some(record) = store.api_key_by_hash(&portico_secrets::digest_hex(&digest)).await? else { return Ok(None) };
        let caller = Caller { tenant_id: record.tenant_id.into(), key_id: record.id.into() };
        self.by_digest.write().unwrap_or_else(|e| e.into_inner()).insert(digest, caller.clone());
        Ok(Some(caller))
    }
}

/// The authenticated caller of a `/v1` request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: Arc<str>,
    pub key_id: Arc<str>,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        authenticate(&parts.headers, state).await
    }
}

/// The caller named by `Authorization: Bearer <api key>`.
pub async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::Unauthorized)?;
    let (scheme, key) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    state.api_keys.resolve(state.store.as_ref(), key).await?.ok_or(ApiError::Unauthorized)
}
