//! `/v1/audit`: an admin reads the tenant's audit trail, newest first, filtered.

use std::sync::Arc;

use axum::extract::State;
use portico_store::AuditQuery;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{Json, Query};
use super::problems::{Forbidden, KeyRequired, Malformed};
use super::{PageSize, parse_time};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{AuditEventView, List};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct AuditFilter {
    /// Only events of this connection.
    pub connection_id: Option<String>,
    /// Only events by this principal, e.g. `key:<id>` or `member:<id>`.
    pub principal: Option<String>,
    /// Only events of this action, e.g. `call.proxy` or `connection.created`.
    pub action: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// At most this many items: 1 to 200 (others are refused with 400), 50 when absent.
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50)]
    pub limit: PageSize,
    /// The `next` cursor of the previous page (events come newest first).
    pub before: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "access", params(AuditFilter),
    responses((status = 200, body = List<AuditEventView>), KeyRequired, Forbidden, Malformed),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(principal): Caller,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<List<AuditEventView>>, ApiError> {
    let since = filter.since.as_deref().map(|text| time_parameter("since", text)).transpose()?;
    let until = filter.until.as_deref().map(|text| time_parameter("until", text)).transpose()?;
    let query = AuditQuery {
        connection_id: filter.connection_id.as_deref(),
        principal: filter.principal.as_deref(),
        action: filter.action.as_deref(),
        since,
        until,
        oldest_first: false,
    };
    let page = state.app.audit_events(&principal, &query, filter.before.as_deref(), filter.limit.get()).await?;
    Ok(Json(List { items: page.items.iter().map(AuditEventView::new).collect(), next: page.next }))
}

/// A time in the query string: a malformed one is a malformed request (400).
fn time_parameter(name: &str, text: &str) -> Result<portico_store::Millis, ApiError> {
    parse_time(name, text)
        .map_err(|_| ApiError::BadRequest(format!("`{name}` must be an RFC 3339 time, e.g. 2030-01-31T12:00:00Z")))
}
