//! The store's behaviour, engine by engine: every function here takes a fresh store ([`Ctx`])
//! and is run on SQLite (tests/sqlite.rs) and on PostgreSQL (tests/postgres.rs) through
//! `behaviour_tests!`.

use std::collections::BTreeMap;

use portico_model::Diagnostic;
use portico_store::{
    ApiKeyRecord, ConnectionRecord, ConnectionStatus, ConnectorRecord, DeleteConnector, SealedBytes, StoreError,
    StoredApiKey, Tenant, new_id, now_millis,
};
use serde_json::json;

use crate::support::{
    Ctx, awkward_bytes, connection_record, connector_record, fixture_connector, state_record, two_tenants,
};

pub async fn tenants_are_created_found_by_name_and_counted(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn a_second_tenant_with_the_same_name_is_a_conflict(ctx: &Ctx) {
    let store = ctx.store();
    store.create_tenant("acme").await.unwrap();
    let error = store.create_tenant("acme").await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(error.to_string(), "tenant 'acme' already exists");
    assert_eq!(store.tenant_count().await.unwrap(), 1);
}

pub async fn api_keys_are_found_by_hash(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn a_key_hash_is_unique_and_needs_an_existing_tenant(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn a_connector_round_trips_exactly(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap().id;
    let record = connector_record(&acme);
    store.insert_connector(&record).await.unwrap();

    let stored = store.connector(&acme, &record.id).await.unwrap().unwrap();
    assert_eq!(stored, record);
    assert_eq!(stored.oauth_client_secret.unwrap().0, awkward_bytes(1));
    assert_eq!(stored.connector, fixture_connector());
}

pub async fn a_connector_without_oauth_client_or_warnings_round_trips(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn inserting_a_connector_twice_is_a_conflict(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap().id;
    let record = connector_record(&acme);
    store.insert_connector(&record).await.unwrap();
    let error = store.insert_connector(&record).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");

    let orphan = connector_record(&new_id());
    let error = store.insert_connector(&orphan).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
}

pub async fn update_connector_replaces_definition_warnings_and_oauth_client(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn connectors_are_invisible_to_other_tenants(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn a_connection_round_trips_exactly_with_byte_identical_secrets(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn every_status_round_trips(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn a_connection_needs_a_connector_of_its_own_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, _globex, _acme_connector, globex_connector) = two_tenants(store).await;

    let error = store.insert_connection(&connection_record(&acme, &globex_connector.id)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let error = store.insert_connection(&connection_record(&acme, &new_id())).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert!(store.list_connections(&acme, None, None, 100).await.unwrap().items.is_empty());
}

pub async fn inserting_a_connection_twice_is_a_conflict(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    let record = connection_record(&acme, &connector.id);
    store.insert_connection(&record).await.unwrap();
    let error = store.insert_connection(&record).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
}

pub async fn update_connection_replaces_the_mutable_fields_only(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn delete_connection_removes_it_once(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn connections_are_invisible_to_other_tenants(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn connectors_page_by_id_across_three_pages(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn a_full_last_page_points_to_an_empty_one(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn connections_page_by_id_across_three_pages_within_a_connector(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn deleting_a_connector_in_use_is_refused_without_cascade(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn cascade_deletes_the_connector_with_its_connections_only(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn an_unused_connector_is_deleted_without_cascade(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn everything_survives_a_restart_and_migrations_run_once(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, acme_connector, globex_connector) = two_tenants(store).await;
    let key = store.add_api_key(&acme, &"f".repeat(64)).await.unwrap();
    let connection = connection_record(&acme, &acme_connector.id);
    store.insert_connection(&connection).await.unwrap();
    ctx.close().await;

    for _restart in 0..2 {
        let reopened_ctx = ctx.reopen().await;
        let reopened = reopened_ctx.store();
        assert_eq!(reopened.tenant_count().await.unwrap(), 2);
        assert_eq!(reopened.tenant_by_name("acme").await.unwrap().unwrap().id, acme);
        assert_eq!(reopened.tenant_by_name("globex").await.unwrap().unwrap().id, globex);
        assert_eq!(reopened.api_key_by_hash(&"f".repeat(64)).await.unwrap(), Some(key.clone()));
        assert_eq!(reopened.connector(&acme, &acme_connector.id).await.unwrap(), Some(acme_connector.clone()));
        assert_eq!(reopened.connector(&globex, &globex_connector.id).await.unwrap(), Some(globex_connector.clone()));
        let stored = reopened.connection(&acme, &connection.id).await.unwrap().unwrap();
        assert_eq!(stored, connection);
        assert_eq!(stored.secrets.unwrap().0, awkward_bytes(7));

        assert_eq!(reopened_ctx.applied_migrations(), reopened_ctx.known_migrations(), "each migration ran once");
        reopened_ctx.close().await;
    }
}

pub async fn undecodable_json_is_reported_as_corrupt_without_its_contents(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    let connection = connection_record(&acme, &connector.id);
    store.insert_connection(&connection).await.unwrap();

    let database = ctx.database();
    database.execute(
        "UPDATE connectors SET definition = '{\"metadata\": \"sk_live_SECRET\"}' WHERE id = $1",
        &[&connector.id],
    );
    database.execute("UPDATE connections SET parameters = '[\"sk_live_SECRET\"' WHERE id = $1", &[&connection.id]);

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

pub async fn concurrent_writers_wait_for_each_other_instead_of_failing(ctx: &Ctx) {
    let store = ctx.shared();
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

pub async fn a_setting_is_written_once(ctx: &Ctx) {
    let store = ctx.store();
    assert_eq!(store.setting("x").await.unwrap(), None);
    assert_eq!(store.init_setting("x", b"first").await.unwrap(), b"first");
    assert_eq!(store.init_setting("x", b"second").await.unwrap(), b"first", "the first value stays");
    assert_eq!(store.setting("x").await.unwrap().as_deref(), Some(&b"first"[..]));
}

pub async fn tokens_are_written_apart_from_the_connection(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn a_sign_in_state_is_taken_once_and_not_after_it_expires(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn a_lease_has_one_holder_until_it_expires(ctx: &Ctx) {
    let store = ctx.store();
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

pub async fn conflicts_are_worded_alike_on_every_engine(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, _globex, connector, globex_connector) = two_tenants(store).await;
    let missing_tenant = new_id();
    let message = |error: StoreError| {
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
        error.to_string()
    };

    assert_eq!(message(store.create_tenant("acme").await.unwrap_err()), "tenant 'acme' already exists");

    store.add_api_key(&acme, &"a".repeat(64)).await.unwrap();
    assert_eq!(
        message(store.add_api_key(&acme, &"a".repeat(64)).await.unwrap_err()),
        "an API key with this hash already exists"
    );
    assert_eq!(
        message(store.add_api_key(&missing_tenant, &"b".repeat(64)).await.unwrap_err()),
        format!(
            "the API key cannot be added: tenant {missing_tenant} is missing, or a key with this hash already exists"
        )
    );

    assert_eq!(
        message(store.insert_connector(&connector).await.unwrap_err()),
        format!("connector {} already exists", connector.id)
    );
    let orphan = connector_record(&missing_tenant);
    assert_eq!(
        message(store.insert_connector(&orphan).await.unwrap_err()),
        format!(
            "connector {} cannot be added: tenant {missing_tenant} is missing, or a connector with this id already exists",
            orphan.id
        )
    );

    let connection = connection_record(&acme, &connector.id);
    store.insert_connection(&connection).await.unwrap();
    assert_eq!(
        message(store.insert_connection(&connection).await.unwrap_err()),
        format!("connection {} already exists", connection.id)
    );
    let foreign = connection_record(&acme, &globex_connector.id);
    assert_eq!(
        message(store.insert_connection(&foreign).await.unwrap_err()),
        format!(
            "connection {} cannot be added: connector {} is not in the tenant, or a connection with this id already exists",
            foreign.id, globex_connector.id
        )
    );

    let state = state_record(&acme, "dup", now_millis() + 60_000);
    store.insert_oauth_state(&state).await.unwrap();
    assert_eq!(message(store.insert_oauth_state(&state).await.unwrap_err()), "sign-in state already exists");
    let orphan_state = state_record(&missing_tenant, "orphan", now_millis() + 60_000);
    assert_eq!(message(store.insert_oauth_state(&orphan_state).await.unwrap_err()), "sign-in state already exists");
}

pub async fn a_page_limit_of_zero_returns_one_item(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap().id;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let connector = connector_record(&acme);
        store.insert_connector(&connector).await.unwrap();
        let connection = connection_record(&acme, &connector.id);
        store.insert_connection(&connection).await.unwrap();
        ids.push((connector.id, connection.id));
    }
    let page = store.list_connectors(&acme, None, 0).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.next.as_deref(), Some(ids[0].0.as_str()));
    let page = store.list_connections(&acme, None, None, 0).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.next.as_deref(), Some(ids[0].1.as_str()));
    let page = store.list_connections(&acme, Some(&ids[1].0), None, 0).await.unwrap();
    assert_eq!(page.items.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![ids[1].1.as_str()]);
    // A cursor that is no id: the page starts after it in byte order.
    let page = store.list_connectors(&acme, Some("0"), 10).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let page = store.list_connectors(&acme, Some("~"), 10).await.unwrap();
    assert!(page.items.is_empty());
}

pub async fn text_round_trips_byte_for_byte(ctx: &Ctx) {
    let store = ctx.store();
    // Names that differ only in case, accents, normalization or trailing space are distinct.
    let names = ["Zoë", "zoë", "Zoe\u{308}", "zoë ", "東京", "🦀 crab", "a'b\"c\\d;--", "A", "a"];
    let mut ids = Vec::new();
    for name in names {
        ids.push(store.create_tenant(name).await.unwrap().id);
    }
    for (name, id) in names.iter().zip(&ids) {
        assert_eq!(store.tenant_by_name(name).await.unwrap().unwrap().id, *id, "{name:?}");
    }
    assert_eq!(store.tenant_count().await.unwrap(), u64::try_from(names.len()).unwrap());

    let connector = connector_record(&ids[0]);
    store.insert_connector(&connector).await.unwrap();
    let record = ConnectionRecord {
        display_name: "Ünïcödé \u{1F600} \t tab, \"quotes\", \\ and a newline\n".to_owned(),
        status_reason: Some("line 1\r\nline 2 \u{2028}".to_owned()),
        parameters: BTreeMap::from([
            ("control".to_owned(), json!("\u{0}\u{1}\u{1f}")),
            ("big".to_owned(), json!(i64::MAX)),
            ("small".to_owned(), json!(i64::MIN)),
            ("float".to_owned(), json!(0.1)),
        ]),
        ..connection_record(&ids[0], &connector.id)
    };
    store.insert_connection(&record).await.unwrap();
    assert_eq!(store.connection(&ids[0], &record.id).await.unwrap(), Some(record));
}

pub async fn a_whole_store_is_listed_for_a_move(ctx: &Ctx) {
    let store = ctx.store();
    assert!(store.list_tenants().await.unwrap().is_empty());
    assert!(store.list_oauth_states().await.unwrap().is_empty());
    assert!(store.list_settings().await.unwrap().is_empty());
    let (acme, globex, ..) = two_tenants(store).await;
    let mut tenants = vec![
        store.tenant_by_name("acme").await.unwrap().unwrap(),
        store.tenant_by_name("globex").await.unwrap().unwrap(),
    ];
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.list_tenants().await.unwrap(), tenants);

    let mut acme_keys = Vec::new();
    for hash in ["1".repeat(64), "2".repeat(64)] {
        let record = store.add_api_key(&acme, &hash).await.unwrap();
        acme_keys.push(StoredApiKey {
            id: record.id,
            tenant_id: record.tenant_id,
            key_hash: hash,
            created_at: record.created_at,
        });
    }
    let globex_key = store.add_api_key(&globex, &"3".repeat(64)).await.unwrap();
    assert_eq!(store.list_api_keys(&acme).await.unwrap(), acme_keys, "by id, with their hashes");
    let globex_keys = store.list_api_keys(&globex).await.unwrap();
    assert_eq!(
        globex_keys.iter().map(|k| (&k.id, k.key_hash.as_str())).collect::<Vec<_>>(),
        [(&globex_key.id, "3".repeat(64).as_str())]
    );
    assert!(store.list_api_keys(&new_id()).await.unwrap().is_empty());

    // Expired sign-ins are listed too (a move decides what to keep), ordered by hash.
    let now = now_millis();
    let live = state_record(&acme, "b-live", now + 600_000);
    let old = state_record(&globex, "a-old", now - 1);
    // (An insert forgets expired states first: the expired one goes in last.)
    store.insert_oauth_state(&live).await.unwrap();
    store.insert_oauth_state(&old).await.unwrap();
    assert_eq!(store.list_oauth_states().await.unwrap(), vec![old, live]);

    store.init_setting("zeta", &awkward_bytes(9)).await.unwrap();
    store.init_setting("alpha", b"first").await.unwrap();
    assert_eq!(
        store.list_settings().await.unwrap(),
        vec![("alpha".to_owned(), b"first".to_vec()), ("zeta".to_owned(), awkward_bytes(9))]
    );
}

pub async fn imports_keep_ids_times_tokens_and_sealed_bytes(ctx: &Ctx) {
    let store = ctx.store();
    let message = |error: StoreError| {
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
        error.to_string()
    };

    let tenant = Tenant { id: new_id(), name: "imported".to_owned(), created_at: 1_234 };
    store.import_tenant(&tenant).await.unwrap();
    assert_eq!(store.tenant_by_name("imported").await.unwrap(), Some(tenant.clone()));
    assert_eq!(
        message(store.import_tenant(&tenant).await.unwrap_err()),
        format!("tenant {} or a tenant named 'imported' already exists", tenant.id)
    );
    let same_name = Tenant { id: new_id(), ..tenant.clone() };
    message(store.import_tenant(&same_name).await.unwrap_err());
    assert_eq!(store.list_tenants().await.unwrap(), vec![tenant.clone()]);

    let key = StoredApiKey { id: new_id(), tenant_id: tenant.id.clone(), key_hash: "9".repeat(64), created_at: 77 };
    store.import_api_key(&key).await.unwrap();
    assert_eq!(
        store.api_key_by_hash(&key.key_hash).await.unwrap(),
        Some(ApiKeyRecord { id: key.id.clone(), tenant_id: tenant.id.clone(), created_at: 77 })
    );
    assert_eq!(
        message(store.import_api_key(&key).await.unwrap_err()),
        format!("API key {} or a key with its hash already exists", key.id)
    );
    let orphan = StoredApiKey { id: new_id(), tenant_id: new_id(), key_hash: "8".repeat(64), created_at: 1 };
    assert_eq!(
        message(store.import_api_key(&orphan).await.unwrap_err()),
        format!(
            "API key {} cannot be added: tenant {} is missing, or the key already exists",
            orphan.id, orphan.tenant_id
        )
    );
    assert_eq!(store.list_api_keys(&tenant.id).await.unwrap(), vec![key]);

    let connector = connector_record(&tenant.id);
    store.insert_connector(&connector).await.unwrap();
    let record = ConnectionRecord {
        status: ConnectionStatus::NeedsReauth,
        status_reason: Some("invalid_grant".to_owned()),
        tokens: Some(SealedBytes(awkward_bytes(3))),
        token_expires_at: Some(42),
        created_at: 5,
        updated_at: 6,
        ..connection_record(&tenant.id, &connector.id)
    };
    store.import_connection(&record).await.unwrap();
    assert_eq!(store.connection(&tenant.id, &record.id).await.unwrap(), Some(record.clone()), "exactly as given");
    assert_eq!(
        message(store.import_connection(&record).await.unwrap_err()),
        format!("connection {} already exists", record.id)
    );
    let elsewhere = ConnectionRecord { id: new_id(), connector_id: new_id(), ..record.clone() };
    message(store.import_connection(&elsewhere).await.unwrap_err());
    let without_tokens = ConnectionRecord { id: new_id(), tokens: None, token_expires_at: None, ..record.clone() };
    store.import_connection(&without_tokens).await.unwrap();
    assert_eq!(store.connection(&tenant.id, &without_tokens.id).await.unwrap(), Some(without_tokens));

    // An expired sign-in is imported as it is, and not forgotten by the next import.
    let now = now_millis();
    let expired = state_record(&tenant.id, "expired", now - 1_000);
    let live = state_record(&tenant.id, "live", now + 600_000);
    store.import_oauth_state(&expired).await.unwrap();
    store.import_oauth_state(&live).await.unwrap();
    assert_eq!(store.list_oauth_states().await.unwrap(), vec![expired, live.clone()]);
    assert_eq!(message(store.import_oauth_state(&live).await.unwrap_err()), "sign-in state already exists");
    assert_eq!(store.take_oauth_state("live", now).await.unwrap(), Some(live));
}
