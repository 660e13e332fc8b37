//! The SQLite store against a real file in a temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use portico_model::{Connector, Diagnostic};
use portico_store::{
    ConnectionRecord, ConnectionStatus, ConnectorRecord, DeleteConnector, SealedBytes, SqliteStore, Store, StoreError,
    new_id, now_millis,
};
use serde_json::json;
use tempfile::TempDir;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    store: SqliteStore,
}

async fn fresh_store() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    Fixture { _dir: dir, path, store }
}

fn fixture_connector() -> Connector {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("connector.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn fixture_warnings() -> Vec<Diagnostic> {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("warnings.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Bytes that a text column would mangle: every byte value, NULs, invalid UTF-8.
fn awkward_bytes(seed: u8) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255u8).map(|b| b.wrapping_add(seed)).collect();
    bytes.extend_from_slice(&[0, 0, 0xff, 0xfe, 0xc3, 0x28, 0]);
    bytes
}

fn connector_record(tenant_id: &str) -> ConnectorRecord {
    let now = now_millis();
    ConnectorRecord {
        id: new_id(),
        tenant_id: tenant_id.to_owned(),
        connector: fixture_connector(),
        warnings: fixture_warnings(),
        oauth_client_id: Some("contoso-portico".to_owned()),
        oauth_client_secret: Some(SealedBytes(awkward_bytes(1))),
        created_at: now,
        updated_at: now,
    }
}

fn connection_record(tenant_id: &str, connector_id: &str) -> ConnectionRecord {
    let now = now_millis();
    let parameters = BTreeMap::from([
        ("subdomain".to_owned(), json!("eu")),
        ("retries".to_owned(), json!(3)),
        ("verbose".to_owned(), json!(true)),
        ("nested".to_owned(), json!({"a": [1, 2.5, null, "ü"]})),
    ]);
    ConnectionRecord {
        id: new_id(),
        tenant_id: tenant_id.to_owned(),
        connector_id: connector_id.to_owned(),
        created_by_key: new_id(),
        display_name: "Support desk (EU)".to_owned(),
        parameter_set: Some("apikey".to_owned()),
        status: ConnectionStatus::Connected,
        status_reason: None,
        parameters,
        secrets: Some(SealedBytes(awkward_bytes(7))),
        tokens: None,
        token_expires_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// Two tenants, each with one connector.
async fn two_tenants(store: &SqliteStore) -> (String, String, ConnectorRecord, ConnectorRecord) {
    let acme = store.create_tenant("acme").await.unwrap().id;
    let globex = store.create_tenant("globex").await.unwrap().id;
    let acme_connector = connector_record(&acme);
    let globex_connector = connector_record(&globex);
    store.insert_connector(&acme_connector).await.unwrap();
    store.insert_connector(&globex_connector).await.unwrap();
    (acme, globex, acme_connector, globex_connector)
}

#[tokio::test]
async fn open_creates_the_file_in_wal_mode_with_foreign_keys_on() {
    let fixture = fresh_store().await;
    assert!(fixture.path.exists());
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(fixture.store.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    let (foreign_keys,): (i64,) = sqlx::query_as("PRAGMA foreign_keys").fetch_one(fixture.store.pool()).await.unwrap();
    assert_eq!(foreign_keys, 1);
    fixture.store.ping().await.unwrap();
}

#[tokio::test]
async fn open_accepts_a_sqlite_url() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("by-url.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.create_tenant("acme").await.unwrap();
    assert!(path.exists());
    assert_eq!(store.tenant_count().await.unwrap(), 1);
}

#[tokio::test]
async fn open_reports_an_unusable_location_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("portico.db");
    let error = SqliteStore::open(path.to_str().unwrap()).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn tenants_are_created_found_by_name_and_counted() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    assert_eq!(store.tenant_count().await.unwrap(), 0);
    assert_eq!(store.tenant_by_name("acme").await.unwrap(), None);

    let before = now_millis();
    let acme = store.create_tenant("acme").await.unwrap();
    assert_eq!(acme.name, "acme");
    assert_eq!(acme.id.len(), 36);
    assert!(acme.created_at >= before && acme.created_at <= now_millis());
    store.create_tenant("globex").await.unwrap();

    assert_eq!(store.tenant_by_name("acme").await.unwrap(), Some(acme));
    assert_eq!(store.tenant_by_name("ACME").await.unwrap(), None);
    assert_eq!(store.tenant_count().await.unwrap(), 2);
}

#[tokio::test]
async fn a_second_tenant_with_the_same_name_is_a_conflict() {
    let fixture = fresh_store().await;
    fixture.store.create_tenant("acme").await.unwrap();
    let error = fixture.store.create_tenant("acme").await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(error.to_string(), "tenant 'acme' already exists");
    assert_eq!(fixture.store.tenant_count().await.unwrap(), 1);
}

#[tokio::test]
async fn api_keys_are_found_by_hash() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap();
    let hash = "a".repeat(64);
    let record = store.add_api_key(&acme.id, &hash).await.unwrap();
    assert_eq!(record.tenant_id, acme.id);
    assert_ne!(record.id, acme.id);

    assert_eq!(store.api_key_by_hash(&hash).await.unwrap(), Some(record.clone()));
    assert_eq!(store.api_key_by_hash(&"b".repeat(64)).await.unwrap(), None);

    // A tenant may have several keys.
    let second = store.add_api_key(&acme.id, &"c".repeat(64)).await.unwrap();
    assert_ne!(second.id, record.id);
    assert_eq!(store.api_key_by_hash(&"c".repeat(64)).await.unwrap(), Some(second));
}

#[tokio::test]
async fn a_key_hash_is_unique_and_needs_an_existing_tenant() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap();
    let globex = store.create_tenant("globex").await.unwrap();
    let hash = "d".repeat(64);
    store.add_api_key(&acme.id, &hash).await.unwrap();

    let error = store.add_api_key(&globex.id, &hash).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(store.api_key_by_hash(&hash).await.unwrap().unwrap().tenant_id, acme.id);

    let error = store.add_api_key(&new_id(), &"e".repeat(64)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(store.api_key_by_hash(&"e".repeat(64)).await.unwrap(), None);
}

#[tokio::test]
async fn a_connector_round_trips_exactly() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let record = connector_record(&acme);
    store.insert_connector(&record).await.unwrap();

    let stored = store.connector(&acme, &record.id).await.unwrap().unwrap();
    assert_eq!(stored, record);
    assert_eq!(stored.oauth_client_secret.unwrap().0, awkward_bytes(1));
    assert_eq!(stored.connector, fixture_connector());
}

#[tokio::test]
async fn a_connector_without_oauth_client_or_warnings_round_trips() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let record = ConnectorRecord {
        warnings: Vec::new(),
        oauth_client_id: None,
        oauth_client_secret: None,
        ..connector_record(&acme)
    };
    store.insert_connector(&record).await.unwrap();
    assert_eq!(store.connector(&acme, &record.id).await.unwrap(), Some(record));
}

#[tokio::test]
async fn inserting_a_connector_twice_is_a_conflict() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let record = connector_record(&acme);
    store.insert_connector(&record).await.unwrap();
    let error = store.insert_connector(&record).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");

    let orphan = connector_record(&new_id());
    let error = store.insert_connector(&orphan).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
}

#[tokio::test]
async fn update_connector_replaces_definition_warnings_and_oauth_client() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let original = connector_record(&acme);
    store.insert_connector(&original).await.unwrap();

    let mut updated = original.clone();
    updated.connector.metadata.display_name = "Contoso Tickets".to_owned();
    updated.connector.operations.pop();
    updated.warnings = vec![Diagnostic::warning("", "re-imported")];
    updated.oauth_client_id = Some("another-client".to_owned());
    updated.oauth_client_secret = Some(SealedBytes(awkward_bytes(99)));
    updated.updated_at = original.updated_at + 1_000;
    assert!(store.update_connector(&updated).await.unwrap());
    assert_eq!(store.connector(&acme, &original.id).await.unwrap(), Some(updated.clone()));

    // Clearing the OAuth client.
    let cleared = ConnectorRecord { oauth_client_id: None, oauth_client_secret: None, ..updated };
    assert!(store.update_connector(&cleared).await.unwrap());
    assert_eq!(store.connector(&acme, &original.id).await.unwrap(), Some(cleared));

    // The creation time is not the caller's to change.
    let rewritten = ConnectorRecord { created_at: 1, ..original.clone() };
    assert!(store.update_connector(&rewritten).await.unwrap());
    assert_eq!(store.connector(&acme, &original.id).await.unwrap().unwrap().created_at, original.created_at);

    let missing = ConnectorRecord { id: new_id(), ..original };
    assert!(!store.update_connector(&missing).await.unwrap());
    assert_eq!(store.connector(&acme, &missing.id).await.unwrap(), None);
}

#[tokio::test]
async fn connectors_are_invisible_to_other_tenants() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let (acme, globex, acme_connector, globex_connector) = two_tenants(store).await;

    // Read.
    assert_eq!(store.connector(&globex, &acme_connector.id).await.unwrap(), None);
    assert_eq!(store.connector(&acme, &globex_connector.id).await.unwrap(), None);

    // List.
    let page = store.list_connectors(&acme, None, 100).await.unwrap();
    assert_eq!(page.items, vec![acme_connector.clone()]);
    let page = store.list_connectors(&globex, None, 100).await.unwrap();
    assert_eq!(page.items, vec![globex_connector.clone()]);

    // Update: globex cannot rewrite acme's connector by naming its id.
    let mut hijack = acme_connector.clone();
    hijack.tenant_id = globex.clone();
    hijack.oauth_client_id = Some("stolen".to_owned());
    assert!(!store.update_connector(&hijack).await.unwrap());
    assert_eq!(store.connector(&acme, &acme_connector.id).await.unwrap(), Some(acme_connector.clone()));

    // Delete, with and without cascade.
    assert_eq!(store.delete_connector(&globex, &acme_connector.id, false).await.unwrap(), DeleteConnector::NotFound);
    assert_eq!(store.delete_connector(&globex, &acme_connector.id, true).await.unwrap(), DeleteConnector::NotFound);
    assert_eq!(store.connector(&acme, &acme_connector.id).await.unwrap(), Some(acme_connector));
}

#[tokio::test]
async fn a_connection_round_trips_exactly_with_byte_identical_secrets() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();

    let record = connection_record(&acme, &connector.id);
    store.insert_connection(&record).await.unwrap();
    let stored = store.connection(&acme, &record.id).await.unwrap().unwrap();
    assert_eq!(stored, record);
    assert_eq!(stored.secrets.unwrap().0, awkward_bytes(7));

    // Without the optional fields.
    let bare = ConnectionRecord {
        parameter_set: None,
        status: ConnectionStatus::Pending,
        status_reason: None,
        parameters: BTreeMap::new(),
        secrets: None,
        ..connection_record(&acme, &connector.id)
    };
    store.insert_connection(&bare).await.unwrap();
    assert_eq!(store.connection(&acme, &bare.id).await.unwrap(), Some(bare));
}

#[tokio::test]
async fn every_status_round_trips() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    for status in
        [ConnectionStatus::Pending, ConnectionStatus::Connected, ConnectionStatus::NeedsReauth, ConnectionStatus::Error]
    {
        let record = ConnectionRecord {
            status,
            status_reason: Some(format!("now {}", status.as_str())),
            ..connection_record(&acme, &connector.id)
        };
        store.insert_connection(&record).await.unwrap();
        assert_eq!(store.connection(&acme, &record.id).await.unwrap().unwrap().status, status);
    }
}

#[tokio::test]
async fn a_connection_needs_a_connector_of_its_own_tenant() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let (acme, _globex, _acme_connector, globex_connector) = two_tenants(store).await;

    let error = store.insert_connection(&connection_record(&acme, &globex_connector.id)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let error = store.insert_connection(&connection_record(&acme, &new_id())).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert!(store.list_connections(&acme, None, None, 100).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn inserting_a_connection_twice_is_a_conflict() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    let record = connection_record(&acme, &connector.id);
    store.insert_connection(&record).await.unwrap();
    let error = store.insert_connection(&record).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
}

#[tokio::test]
async fn update_connection_replaces_the_mutable_fields_only() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    let other_connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    store.insert_connector(&other_connector).await.unwrap();
    let original = connection_record(&acme, &connector.id);
    store.insert_connection(&original).await.unwrap();

    let updated = ConnectionRecord {
        display_name: "Renamed".to_owned(),
        parameter_set: Some("oauth".to_owned()),
        status: ConnectionStatus::NeedsReauth,
        status_reason: Some("the refresh token was revoked".to_owned()),
        parameters: BTreeMap::from([("subdomain".to_owned(), json!("us"))]),
        secrets: Some(SealedBytes(awkward_bytes(200))),
        updated_at: original.updated_at + 5,
        ..original.clone()
    };
    assert!(store.update_connection(&updated).await.unwrap());
    assert_eq!(store.connection(&acme, &original.id).await.unwrap(), Some(updated.clone()));

    // Connector, creator and creation time stay as they were.
    let rewritten = ConnectionRecord {
        connector_id: other_connector.id.clone(),
        created_by_key: "someone-else".to_owned(),
        created_at: 1,
        secrets: None,
        ..updated.clone()
    };
    assert!(store.update_connection(&rewritten).await.unwrap());
    let stored = store.connection(&acme, &original.id).await.unwrap().unwrap();
    assert_eq!(stored, ConnectionRecord { secrets: None, ..updated });

    let missing = ConnectionRecord { id: new_id(), ..original };
    assert!(!store.update_connection(&missing).await.unwrap());
    assert_eq!(store.connection(&acme, &missing.id).await.unwrap(), None);
}

#[tokio::test]
async fn delete_connection_removes_it_once() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    let record = connection_record(&acme, &connector.id);
    store.insert_connection(&record).await.unwrap();

    assert!(store.delete_connection(&acme, &record.id).await.unwrap());
    assert_eq!(store.connection(&acme, &record.id).await.unwrap(), None);
    assert!(!store.delete_connection(&acme, &record.id).await.unwrap());
    // The connector is not affected.
    assert!(store.connector(&acme, &connector.id).await.unwrap().is_some());
}

#[tokio::test]
async fn connections_are_invisible_to_other_tenants() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let (acme, globex, acme_connector, globex_connector) = two_tenants(store).await;
    let acme_connection = connection_record(&acme, &acme_connector.id);
    let globex_connection = connection_record(&globex, &globex_connector.id);
    store.insert_connection(&acme_connection).await.unwrap();
    store.insert_connection(&globex_connection).await.unwrap();

    // Read.
    assert_eq!(store.connection(&globex, &acme_connection.id).await.unwrap(), None);
    assert_eq!(store.connection(&acme, &globex_connection.id).await.unwrap(), None);

    // List, whole and by connector (naming the other tenant's connector finds nothing).
    assert_eq!(store.list_connections(&acme, None, None, 100).await.unwrap().items, vec![acme_connection.clone()]);
    assert_eq!(store.list_connections(&globex, None, None, 100).await.unwrap().items, vec![globex_connection.clone()]);
    assert!(store.list_connections(&globex, Some(&acme_connector.id), None, 100).await.unwrap().items.is_empty());
    assert_eq!(
        store.list_connections(&acme, Some(&acme_connector.id), None, 100).await.unwrap().items,
        vec![acme_connection.clone()]
    );

    // Update.
    let hijack = ConnectionRecord {
        tenant_id: globex.clone(),
        secrets: Some(SealedBytes(b"attacker".to_vec())),
        ..acme_connection.clone()
    };
    assert!(!store.update_connection(&hijack).await.unwrap());

    // Delete.
    assert!(!store.delete_connection(&globex, &acme_connection.id).await.unwrap());
    assert_eq!(store.connection(&acme, &acme_connection.id).await.unwrap(), Some(acme_connection));
    assert_eq!(store.connection(&globex, &globex_connection.id).await.unwrap(), Some(globex_connection));
}

#[tokio::test]
async fn connectors_page_by_id_across_three_pages() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let (acme, _globex, first, _) = two_tenants(store).await;
    let mut expected = vec![first.id.clone()];
    for _ in 0..6 {
        let record = connector_record(&acme);
        store.insert_connector(&record).await.unwrap();
        expected.push(record.id);
    }
    expected.sort();

    let one = store.list_connectors(&acme, None, 3).await.unwrap();
    assert_eq!(one.items.len(), 3);
    assert_eq!(one.next.as_deref(), Some(expected[2].as_str()));
    let two = store.list_connectors(&acme, one.next.as_deref(), 3).await.unwrap();
    assert_eq!(two.items.len(), 3);
    assert_eq!(two.next.as_deref(), Some(expected[5].as_str()));
    let three = store.list_connectors(&acme, two.next.as_deref(), 3).await.unwrap();
    assert_eq!(three.items.len(), 1);
    assert_eq!(three.next, None);

    let seen: Vec<String> = [one, two, three].into_iter().flat_map(|page| page.items).map(|r| r.id).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_full_last_page_points_to_an_empty_one() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    for _ in 0..2 {
        store.insert_connector(&connector_record(&acme)).await.unwrap();
    }
    let page = store.list_connectors(&acme, None, 2).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let last = store.list_connectors(&acme, page.next.as_deref(), 2).await.unwrap();
    assert!(last.items.is_empty());
    assert_eq!(last.next, None);
}

#[tokio::test]
async fn connections_page_by_id_across_three_pages_within_a_connector() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let (acme, globex, connector, globex_connector) = two_tenants(store).await;
    let other = connector_record(&acme);
    store.insert_connector(&other).await.unwrap();
    let mut expected = Vec::new();
    for index in 0..8 {
        // Interleave: connections of another connector and of another tenant must be skipped.
        store.insert_connection(&connection_record(&acme, &other.id)).await.unwrap();
        store.insert_connection(&connection_record(&globex, &globex_connector.id)).await.unwrap();
        let record =
            ConnectionRecord { display_name: format!("connection {index}"), ..connection_record(&acme, &connector.id) };
        store.insert_connection(&record).await.unwrap();
        expected.push(record.id);
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list_connections(&acme, Some(&connector.id), cursor.as_deref(), 3).await.unwrap();
        pages += 1;
        assert!(page.items.iter().all(|c| c.connector_id == connector.id && c.tenant_id == acme));
        seen.extend(page.items.into_iter().map(|c| c.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);

    // Without the connector filter: every connection of the tenant, in id order.
    let all = store.list_connections(&acme, None, None, 100).await.unwrap();
    assert_eq!(all.items.len(), 16);
    assert!(all.items.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(all.next, None);
}

#[tokio::test]
async fn deleting_a_connector_in_use_is_refused_without_cascade() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    let first = connection_record(&acme, &connector.id);
    let second = connection_record(&acme, &connector.id);
    store.insert_connection(&first).await.unwrap();
    store.insert_connection(&second).await.unwrap();

    assert_eq!(
        store.delete_connector(&acme, &connector.id, false).await.unwrap(),
        DeleteConnector::InUse { connections: 2 }
    );
    assert!(store.connector(&acme, &connector.id).await.unwrap().is_some());
    assert_eq!(store.connection(&acme, &first.id).await.unwrap(), Some(first));
}

#[tokio::test]
async fn cascade_deletes_the_connector_with_its_connections_only() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    let keeper = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    store.insert_connector(&keeper).await.unwrap();
    let doomed = [connection_record(&acme, &connector.id), connection_record(&acme, &connector.id)];
    for record in &doomed {
        store.insert_connection(record).await.unwrap();
    }
    let kept = connection_record(&acme, &keeper.id);
    store.insert_connection(&kept).await.unwrap();

    assert_eq!(
        store.delete_connector(&acme, &connector.id, true).await.unwrap(),
        DeleteConnector::Deleted { connections: 2 }
    );
    assert_eq!(store.connector(&acme, &connector.id).await.unwrap(), None);
    for record in &doomed {
        assert_eq!(store.connection(&acme, &record.id).await.unwrap(), None);
    }
    assert_eq!(store.list_connections(&acme, None, None, 100).await.unwrap().items, vec![kept]);
    assert_eq!(store.delete_connector(&acme, &connector.id, true).await.unwrap(), DeleteConnector::NotFound);
}

#[tokio::test]
async fn an_unused_connector_is_deleted_without_cascade() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    assert_eq!(
        store.delete_connector(&acme, &connector.id, false).await.unwrap(),
        DeleteConnector::Deleted { connections: 0 }
    );
    assert_eq!(store.connector(&acme, &connector.id).await.unwrap(), None);
    assert_eq!(store.delete_connector(&acme, &new_id(), false).await.unwrap(), DeleteConnector::NotFound);
}

#[tokio::test]
async fn everything_survives_a_restart_and_migrations_run_once() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let (acme, globex, acme_connector, globex_connector) = two_tenants(store).await;
    let key = store.add_api_key(&acme, &"f".repeat(64)).await.unwrap();
    let connection = connection_record(&acme, &acme_connector.id);
    store.insert_connection(&connection).await.unwrap();
    store.close().await;

    for _restart in 0..2 {
        let reopened = SqliteStore::open(fixture.path.to_str().unwrap()).await.unwrap();
        assert_eq!(reopened.tenant_count().await.unwrap(), 2);
        assert_eq!(reopened.tenant_by_name("acme").await.unwrap().unwrap().id, acme);
        assert_eq!(reopened.tenant_by_name("globex").await.unwrap().unwrap().id, globex);
        assert_eq!(reopened.api_key_by_hash(&"f".repeat(64)).await.unwrap(), Some(key.clone()));
        assert_eq!(reopened.connector(&acme, &acme_connector.id).await.unwrap(), Some(acme_connector.clone()));
        assert_eq!(reopened.connector(&globex, &globex_connector.id).await.unwrap(), Some(globex_connector.clone()));
        let stored = reopened.connection(&acme, &connection.id).await.unwrap().unwrap();
        assert_eq!(stored, connection);
        assert_eq!(stored.secrets.unwrap().0, awkward_bytes(7));

        let (migrations,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(reopened.pool()).await.unwrap();
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite")).unwrap().count();
        assert_eq!(migrations, i64::try_from(files).unwrap(), "each migration ran once");
        reopened.close().await;
    }
}

#[tokio::test]
async fn undecodable_json_is_reported_as_corrupt_without_its_contents() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    let connection = connection_record(&acme, &connector.id);
    store.insert_connection(&connection).await.unwrap();

    sqlx::query("UPDATE connectors SET definition = '{\"metadata\": \"sk_live_SECRET\"}' WHERE id = ?")
        .bind(&connector.id)
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE connections SET parameters = '[\"sk_live_SECRET\"' WHERE id = ?")
        .bind(&connection.id)
        .execute(store.pool())
        .await
        .unwrap();

    let errors = [
        store.connector(&acme, &connector.id).await.unwrap_err(),
        store.list_connectors(&acme, None, 10).await.unwrap_err(),
        store.connection(&acme, &connection.id).await.unwrap_err(),
        store.list_connections(&acme, None, None, 10).await.unwrap_err(),
    ];
    for error in errors {
        assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
        let message = error.to_string();
        assert!(!message.contains("SECRET"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_wait_for_each_other_instead_of_failing() {
    let fixture = fresh_store().await;
    let store = std::sync::Arc::new(fixture.store.clone());
    let acme = store.create_tenant("acme").await.unwrap().id;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, acme) = (store.clone(), acme.clone());
        tasks.push(tokio::spawn(async move {
            let connector = connector_record(&acme);
            store.insert_connector(&connector).await.unwrap();
            store.insert_connection(&connection_record(&acme, &connector.id)).await.unwrap();
            let cascade = store.delete_connector(&acme, &connector.id, true).await.unwrap();
            assert_eq!(cascade, DeleteConnector::Deleted { connections: 1 });
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(store.list_connectors(&acme, None, 100).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn a_setting_is_written_once() {
    let fixture = fresh_store().await;
    assert_eq!(fixture.store.setting("x").await.unwrap(), None);
    assert_eq!(fixture.store.init_setting("x", b"first").await.unwrap(), b"first");
    assert_eq!(fixture.store.init_setting("x", b"second").await.unwrap(), b"first", "the first value stays");
    assert_eq!(fixture.store.setting("x").await.unwrap().as_deref(), Some(&b"first"[..]));
}

#[tokio::test]
async fn tokens_are_written_apart_from_the_connection() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let (acme, globex, connector, _) = two_tenants(store).await;
    let record = ConnectionRecord { status: ConnectionStatus::Pending, ..connection_record(&acme, &connector.id) };
    store.insert_connection(&record).await.unwrap();
    let tokens = SealedBytes(awkward_bytes(3));
    assert!(
        !store
            .set_connection_tokens(&globex, &record.id, Some(&tokens), Some(5), ConnectionStatus::Connected, None)
            .await
            .unwrap(),
        "another tenant's connection is not found"
    );
    assert!(
        store
            .set_connection_tokens(&acme, &record.id, Some(&tokens), Some(5), ConnectionStatus::Connected, None)
            .await
            .unwrap()
    );
    let stored = store.connection(&acme, &record.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.tokens.as_ref(), stored.token_expires_at, stored.status),
        (Some(&tokens), Some(5), ConnectionStatus::Connected)
    );
    // An ordinary update keeps the tokens.
    let renamed = ConnectionRecord { display_name: "renamed".into(), ..stored.clone() };
    store.update_connection(&ConnectionRecord { tokens: None, ..renamed }).await.unwrap();
    let stored = store.connection(&acme, &record.id).await.unwrap().unwrap();
    assert_eq!((stored.display_name.as_str(), stored.tokens), ("renamed", Some(tokens)));
    store
        .set_connection_tokens(&acme, &record.id, None, None, ConnectionStatus::NeedsReauth, Some("invalid_grant"))
        .await
        .unwrap();
    let stored = store.connection(&acme, &record.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.tokens, stored.status, stored.status_reason.as_deref()),
        (None, ConnectionStatus::NeedsReauth, Some("invalid_grant"))
    );
}

fn state_record(tenant_id: &str, hash: &str, expires_at: i64) -> portico_store::OAuthStateRecord {
    portico_store::OAuthStateRecord {
        state_hash: hash.to_owned(),
        tenant_id: tenant_id.to_owned(),
        connection_id: new_id(),
        verifier: SealedBytes(awkward_bytes(1)),
        redirect_uri: "http://127.0.0.1/oauth/callback".to_owned(),
        return_url: Some("http://127.0.0.1/done".to_owned()),
        created_at: 1,
        expires_at,
    }
}

#[tokio::test]
async fn a_sign_in_state_is_taken_once_and_not_after_it_expires() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    let (acme, ..) = two_tenants(store).await;
    let now = now_millis();
    let live = state_record(&acme, "live", now + 600_000);
    store.insert_oauth_state(&live).await.unwrap();
    store.insert_oauth_state(&state_record(&acme, "old", now - 1)).await.unwrap();
    assert_eq!(store.take_oauth_state("live", now).await.unwrap(), Some(live));
    assert_eq!(store.take_oauth_state("live", now).await.unwrap(), None, "replayed");
    assert_eq!(store.take_oauth_state("forged", now).await.unwrap(), None);
    store.insert_oauth_state(&state_record(&acme, "soon", now + 10)).await.unwrap();
    assert_eq!(store.take_oauth_state("soon", now + 11).await.unwrap(), None, "expired");
    assert_eq!(store.take_oauth_state("soon", now).await.unwrap(), None, "an expired state is gone");
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires() {
    let fixture = fresh_store().await;
    let store = &fixture.store;
    assert!(store.acquire_lease("refresh:c1", "a", 100, 200).await.unwrap());
    assert!(!store.acquire_lease("refresh:c1", "b", 150, 250).await.unwrap(), "held by a");
    assert!(store.acquire_lease("refresh:c1", "a", 150, 300).await.unwrap(), "a extends its own lease");
    assert!(store.acquire_lease("refresh:c2", "b", 150, 250).await.unwrap(), "another name is free");
    assert!(store.acquire_lease("refresh:c1", "b", 301, 400).await.unwrap(), "expired: b takes it");
    store.release_lease("refresh:c1", "a").await.unwrap();
    assert!(!store.acquire_lease("refresh:c1", "c", 302, 400).await.unwrap(), "a cannot release b's lease");
    store.release_lease("refresh:c1", "b").await.unwrap();
    assert!(store.acquire_lease("refresh:c1", "c", 302, 400).await.unwrap());
}
