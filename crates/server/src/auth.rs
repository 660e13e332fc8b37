//! Who is calling a `/v1` route: `Authorization: Bearer <api key>`, resolved by the use cases.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use portico_app::Principal;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated principal of a `/v1` request.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let authorization = parts.headers.get(AUTHORIZATION).map(|value| value.as_bytes());
        let source = parts.extensions.get::<crate::state::ClientAddr>().map(|addr| addr.0);
        Ok(Caller(state.app.authenticate_bearer(authorization, source).await?))
    }
}
