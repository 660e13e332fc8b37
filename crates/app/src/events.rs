//! The events an app learns of through webhooks: what happened to a connection (or a connect
//! session), made once here and written to the store's outbox in the same transaction as the
//! change itself. A payload says which connection, whose, and its status; never a secret.

use portico_store::{ConnectionRecord, EventRecord, Millis};
use serde_json::json;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    ConnectionCreated,
    ConnectionUpdated,
    ConnectionDeleted,
    ConnectionReauthorized,
    /// Its credential stopped working for good (a refresh refused, the connector's parameters
    /// changed): its user must sign in or fill it in again.
    ConnectionNeedsReauth,
    ConnectSessionCompleted,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::ConnectionCreated,
        EventKind::ConnectionUpdated,
        EventKind::ConnectionDeleted,
        EventKind::ConnectionReauthorized,
        EventKind::ConnectionNeedsReauth,
        EventKind::ConnectSessionCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ConnectionCreated => "connection.created",
            EventKind::ConnectionUpdated => "connection.updated",
            EventKind::ConnectionDeleted => "connection.deleted",
            EventKind::ConnectionReauthorized => "connection.reauthorized",
            EventKind::ConnectionNeedsReauth => "connection.needs_reauth",
            EventKind::ConnectSessionCompleted => "connect_session.completed",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// The event `kind` of connection `record` (as it is after the change), at `now`.
pub(crate) fn of_connection(kind: EventKind, record: &ConnectionRecord, now: Millis) -> EventRecord {
    let mut data = json!({
        "connectionId": record.id,
        "connectorId": record.connector_id,
        "endUserId": record.end_user_id,
        "status": record.status.as_str(),
    });
    if let Some(reason) = &record.status_reason {
        data["reason"] = json!(reason);
    }
    let id = format!("evt_{}", portico_store::new_id());
    let payload = json!({"type": kind.as_str(), "timestamp": rfc3339(now), "data": data});
    EventRecord {
        id,
        tenant_id: record.tenant_id.clone(),
        kind: kind.as_str().to_owned(),
        payload: payload.to_string(),
        ordering_key: record.id.clone(),
        created_at: now,
    }
}

/// The event of a connect session completed by connection `record`.
pub(crate) fn session_completed(session_id: &str, record: &ConnectionRecord, now: Millis) -> EventRecord {
    let mut event = of_connection(EventKind::ConnectSessionCompleted, record, now);
    let mut payload: serde_json::Value = serde_json::from_str(&event.payload).unwrap_or_default();
    payload["data"]["connectSessionId"] = json!(session_id);
    event.payload = payload.to_string();
    event
}

/// Milliseconds since the epoch as RFC 3339 (UTC), to the millisecond.
pub(crate) fn rfc3339(millis: Millis) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use portico_store::ConnectionStatus;

    use super::*;

    fn record() -> ConnectionRecord {
        ConnectionRecord {
            id: "c1".into(),
            tenant_id: "t".into(),
            connector_id: "k1".into(),
            end_user_id: Some("ann".into()),
            created_by: "key:x".into(),
            updated_by: None,
            display_name: "D".into(),
            parameter_set: None,
            status: ConnectionStatus::NeedsReauth,
            status_reason: Some("sign in again".into()),
            parameters: BTreeMap::new(),
            secrets: None,
            tokens: None,
            token_expires_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_payload_names_the_connection_its_owner_and_status() {
        let event = of_connection(EventKind::ConnectionNeedsReauth, &record(), 951_782_400_123);
        let payload: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(
            payload,
            json!({"type": "connection.needs_reauth", "timestamp": "2000-02-29T00:00:00.123Z",
                "data": {"connectionId": "c1", "connectorId": "k1", "endUserId": "ann",
                    "status": "needs_reauth", "reason": "sign in again"}})
        );
        assert_eq!((event.kind.as_str(), event.ordering_key.as_str()), ("connection.needs_reauth", "c1"));
        assert!(event.id.starts_with("evt_"));
        let completed = session_completed("cs1", &record(), 0);
        assert!(completed.payload.contains("\"connectSessionId\":\"cs1\""));
        assert_eq!(completed.kind, "connect_session.completed");
    }

    #[test]
    fn kinds_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("connection.*"), None);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_798_761_599_999), "2026-12-31T23:59:59.999Z");
    }
}
