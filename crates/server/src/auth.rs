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
use portico_store::{ApiKeyRecord, Store};

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Default)]
pub struct ApiKeyCache {
    by_hash: RwLock<HashMap<String, ApiKeyRecord>>,
}

impl ApiKeyCache {
    pub async fn resolve(&self, store: &dyn Store, key: &str) -> Result<Option<ApiKeyRecord>, ApiError> {
        let hash = portico_secrets::api_key_hash(key);
        if let Some(record) = self.by_hash.read().unwrap_or_else(|e| e.into_inner()).get(&hash) {
            return Ok(Some(record.clone()));
        }
        let Some(record) = store.api_key_by_hash(&hash).await? else { return Ok(None) };
        self.by_hash.write().unwrap_or_else(|e| e.into_inner()).insert(hash, record.clone());
        Ok(Some(record))
    }
}

/// The authenticated caller of a `/v1` request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    pub key_id: String,
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
    let record = state.api_keys.resolve(state.store.as_ref(), key).await?.ok_or(ApiError::Unauthorized)?;
    Ok(Caller { tenant_id: record.tenant_id, key_id: record.id })
}
