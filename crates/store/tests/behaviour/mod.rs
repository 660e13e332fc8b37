//! The store's behaviour, engine by engine: every function here takes a fresh store ([`Ctx`])
//! and is run on SQLite (tests/sqlite.rs) and on PostgreSQL (tests/postgres.rs) through
//! `behaviour_tests!`.

use std::collections::BTreeMap;

use portico_model::{Diagnostic, Role, SharePermission};
use portico_store::{
    ApiKeyRecord, Attempt, AttemptNext, Change, ConnectSessionRecord, ConnectionQuery, ConnectionRecord,
    ConnectionStatus, ConnectorRecord, DeleteConnector, DeliveryQueue, DeliveryRecord, DeliveryState, Effects,
    EventRecord, MemberRecord, OAuthStateRecord, SealedBytes, ShareRecord, Store, StoreError, StoredApiKey,
    StoredConnectSession, Tenant, WebhookRecord, new_id, now_millis,
};
use serde_json::json;

use crate::support::{
    Ctx, EVERY_CONNECTION, alices_connection, api_key_record, awkward_bytes, connection_record, connector_record,
    event_record, fixture_connector, key_hash, keys_of_every_kind, member_record, of_connector, owned_connection,
    pages, pending_delivery, session_record, share_record, state_record, two_tenants, webhook_record,
};

mod audit;
mod keys;
mod outbox;
pub use audit::*;
pub use keys::*;
pub use outbox::*;

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
    let record = api_key_record(&acme.id);
    store.insert_api_key(&record, &key_hash(1)).await.unwrap();

    assert_eq!(store.api_key_by_hash(&key_hash(1)).await.unwrap(), Some(record.clone()));
    assert_eq!(store.api_key_by_hash(&key_hash(2)).await.unwrap(), None);

    // A tenant may have several keys.
    let second = api_key_record(&acme.id);
    store.insert_api_key(&second, &key_hash(3)).await.unwrap();
    assert_eq!(store.api_key_by_hash(&key_hash(3)).await.unwrap(), Some(second));
    assert_eq!(store.api_key_by_hash(&key_hash(1)).await.unwrap(), Some(record));
}

pub async fn a_key_hash_is_unique_and_needs_an_existing_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap();
    let globex = store.create_tenant("globex").await.unwrap();
    let original = api_key_record(&acme.id);
    store.insert_api_key(&original, &key_hash(4)).await.unwrap();

    // The same hash, in another tenant or not.
    for tenant in [&globex.id, &acme.id] {
        let error = store.insert_api_key(&api_key_record(tenant), &key_hash(4)).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    }
    // The same id, with another hash.
    let error = store.insert_api_key(&original, &key_hash(5)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(store.api_key_by_hash(&key_hash(4)).await.unwrap(), Some(original));
    assert_eq!(store.api_key_by_hash(&key_hash(5)).await.unwrap(), None);

    let error = store.insert_api_key(&api_key_record(&new_id()), &key_hash(6)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(store.api_key_by_hash(&key_hash(6)).await.unwrap(), None);
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

pub async fn a_connector_without_oauth_client_warnings_or_makers_round_trips(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap().id;
    let record = ConnectorRecord {
        warnings: Vec::new(),
        oauth_client_id: None,
        oauth_client_secret: None,
        created_by: None,
        updated_by: None,
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
    updated.updated_by = Some("operator".to_owned());
    assert!(store.update_connector(&updated).await.unwrap());
    assert_eq!(store.connector(&acme, &original.id).await.unwrap(), Some(updated.clone()));

    // Clearing the OAuth client.
    let cleared = ConnectorRecord { oauth_client_id: None, oauth_client_secret: None, ..updated };
    assert!(store.update_connector(&cleared).await.unwrap());
    assert_eq!(store.connector(&acme, &original.id).await.unwrap(), Some(cleared));

    // The creation, its time and its maker, is not the caller's to change.
    let rewritten =
        ConnectorRecord { created_at: 1, created_by: Some("key:someone-else".to_owned()), ..original.clone() };
    assert!(store.update_connector(&rewritten).await.unwrap());
    let stored = store.connector(&acme, &original.id).await.unwrap().unwrap();
    assert_eq!((stored.created_at, stored.created_by), (original.created_at, original.created_by.clone()));

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

    // With tokens, as a connection made with client credentials is.
    let record = ConnectionRecord {
        updated_by: Some(format!("member:{}", new_id())),
        tokens: Some(SealedBytes(awkward_bytes(8))),
        token_expires_at: Some(1_234),
        ..owned_connection(&acme, &connector.id, "alice")
    };
    store.insert_connection(&record).await.unwrap();
    let stored = store.connection(&acme, &record.id).await.unwrap().unwrap();
    assert_eq!(stored, record);
    assert_eq!(stored.secrets.unwrap().0, awkward_bytes(7));
    assert_eq!(stored.tokens.unwrap().0, awkward_bytes(8));

    // Without the optional fields: a connection of the tenant, never changed.
    let bare = ConnectionRecord {
        end_user_id: None,
        updated_by: None,
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
    assert!(store.list_connections(&acme, &EVERY_CONNECTION, None, 100).await.unwrap().items.is_empty());
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
    let original = owned_connection(&acme, &connector.id, "alice");
    store.insert_connection(&original).await.unwrap();

    let updated = ConnectionRecord {
        display_name: "Renamed".to_owned(),
        parameter_set: Some("oauth".to_owned()),
        status: ConnectionStatus::NeedsReauth,
        status_reason: Some("the refresh token was revoked".to_owned()),
        parameters: BTreeMap::from([("subdomain".to_owned(), json!("us"))]),
        secrets: Some(SealedBytes(awkward_bytes(200))),
        updated_at: original.updated_at + 5,
        updated_by: Some(format!("member:{}", new_id())),
        ..original.clone()
    };
    assert!(store.update_connection(&updated).await.unwrap());
    assert_eq!(store.connection(&acme, &original.id).await.unwrap(), Some(updated.clone()));

    // Connector, owner, creator and creation time stay as they were.
    let rewritten = ConnectionRecord {
        connector_id: other_connector.id.clone(),
        end_user_id: Some("someone-else".to_owned()),
        created_by: "key:someone-else".to_owned(),
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
    assert_eq!(
        store.list_connections(&acme, &EVERY_CONNECTION, None, 100).await.unwrap().items,
        vec![acme_connection.clone()]
    );
    assert_eq!(
        store.list_connections(&globex, &EVERY_CONNECTION, None, 100).await.unwrap().items,
        vec![globex_connection.clone()]
    );
    assert!(
        store.list_connections(&globex, &of_connector(&acme_connector.id), None, 100).await.unwrap().items.is_empty()
    );
    assert_eq!(
        store.list_connections(&acme, &of_connector(&acme_connector.id), None, 100).await.unwrap().items,
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
        let page = store.list_connections(&acme, &of_connector(&connector.id), cursor.as_deref(), 3).await.unwrap();
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
    let all = store.list_connections(&acme, &EVERY_CONNECTION, None, 100).await.unwrap();
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
    assert_eq!(store.list_connections(&acme, &EVERY_CONNECTION, None, 100).await.unwrap().items, vec![kept]);
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
    let key = api_key_record(&acme);
    store.insert_api_key(&key, &key_hash(15)).await.unwrap();
    let member = member_record(&acme, "ada@acme.test", Role::Author);
    store.insert_member(&member).await.unwrap();
    let connection = owned_connection(&acme, &acme_connector.id, "alice");
    store.insert_connection(&connection).await.unwrap();
    let share = share_record(&connection, "bob", SharePermission::Use);
    store.put_share(&share).await.unwrap();
    ctx.close().await;

    for _restart in 0..2 {
        let reopened_ctx = ctx.reopen().await;
        let reopened = reopened_ctx.store();
        assert_eq!(reopened.tenant_count().await.unwrap(), 2);
        assert_eq!(reopened.tenant_by_name("acme").await.unwrap().unwrap().id, acme);
        assert_eq!(reopened.tenant_by_name("globex").await.unwrap().unwrap().id, globex);
        assert_eq!(reopened.api_key_by_hash(&key_hash(15)).await.unwrap(), Some(key.clone()));
        assert_eq!(reopened.member(&acme, &member.id).await.unwrap(), Some(member.clone()));
        assert_eq!(reopened.list_shares(&acme, &connection.id).await.unwrap(), vec![share.clone()]);
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
        store.list_connections(&acme, &EVERY_CONNECTION, None, 10).await.unwrap_err(),
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

    store.insert_api_key(&api_key_record(&acme), &key_hash(1)).await.unwrap();
    let same_hash = api_key_record(&acme);
    assert_eq!(
        message(store.insert_api_key(&same_hash, &key_hash(1)).await.unwrap_err()),
        format!("API key {} or a key with its hash already exists", same_hash.id)
    );
    let orphan_key = api_key_record(&missing_tenant);
    assert_eq!(
        message(store.insert_api_key(&orphan_key, &key_hash(2)).await.unwrap_err()),
        format!(
            "API key {} cannot be added: tenant {missing_tenant} is missing, or the key already exists",
            orphan_key.id
        )
    );

    store.insert_member(&member_record(&acme, "ada@acme.test", Role::Admin)).await.unwrap();
    let same_address = member_record(&acme, "ada@acme.test", Role::User);
    assert_eq!(
        message(store.insert_member(&same_address).await.unwrap_err()),
        format!("member {} or a member with the address ada@acme.test already exists", same_address.id)
    );
    let orphan_member = member_record(&missing_tenant, "ada@acme.test", Role::User);
    assert_eq!(
        message(store.insert_member(&orphan_member).await.unwrap_err()),
        format!(
            "member {} cannot be added: tenant {missing_tenant} is missing, or the member already exists",
            orphan_member.id
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

    let unshared = connection_record(&acme, &connector.id);
    assert_eq!(
        message(store.put_share(&share_record(&unshared, "alice", SharePermission::Use)).await.unwrap_err()),
        format!(
            "the share of connection {} with alice cannot be written: the connection is missing, or a share \
             already exists",
            unshared.id
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
    let page = store.list_connections(&acme, &EVERY_CONNECTION, None, 0).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.next.as_deref(), Some(ids[0].1.as_str()));
    let page = store.list_connections(&acme, &of_connector(&ids[1].0), None, 0).await.unwrap();
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
    let (acme, globex, connector, globex_connector) = two_tenants(store).await;
    let mut tenants = vec![
        store.tenant_by_name("acme").await.unwrap().unwrap(),
        store.tenant_by_name("globex").await.unwrap().unwrap(),
    ];
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.list_tenants().await.unwrap(), tenants);

    // Connections with owners and their last changers, and their shares.
    let mut connections = Vec::new();
    for owner in [Some("alice"), Some("bob"), None] {
        let record = ConnectionRecord {
            end_user_id: owner.map(str::to_owned),
            updated_by: Some(format!("key:{}", new_id())),
            ..connection_record(&acme, &connector.id)
        };
        store.insert_connection(&record).await.unwrap();
        connections.push(record);
    }
    assert_eq!(store.list_connections(&acme, &EVERY_CONNECTION, None, 100).await.unwrap().items, connections);
    let mut shares = Vec::new();
    for (connection, end_user, permission) in [
        (&connections[1], "carol", SharePermission::Edit),
        (&connections[0], "carol", SharePermission::Use),
        (&connections[0], "bob", SharePermission::Edit),
        (&connections[0], "Dave", SharePermission::Use),
    ] {
        let share = share_record(connection, end_user, permission);
        store.put_share(&share).await.unwrap();
        shares.push(share);
    }
    let globex_connection = owned_connection(&globex, &globex_connector.id, "alice");
    store.insert_connection(&globex_connection).await.unwrap();
    let globex_share = share_record(&globex_connection, "bob", SharePermission::Use);
    store.put_share(&globex_share).await.unwrap();
    shares.sort_by(|a, b| (&a.connection_id, &a.end_user_id).cmp(&(&b.connection_id, &b.end_user_id)));
    assert_eq!(store.export_shares(&acme).await.unwrap(), shares, "by connection and end user, byte by byte");
    assert_eq!(store.export_shares(&globex).await.unwrap(), vec![globex_share]);

    // Keys of every kind, the revoked one included, by id, with their hashes.
    let scope: Vec<String> = connections.iter().map(|c| c.id.clone()).collect();
    let mut acme_keys = Vec::new();
    for (n, record) in keys_of_every_kind(&acme, &scope).into_iter().enumerate() {
        store.insert_api_key(&record, &key_hash(n)).await.unwrap();
        acme_keys.push(StoredApiKey { record, key_hash: key_hash(n) });
    }
    let globex_key = StoredApiKey { record: api_key_record(&globex), key_hash: key_hash(100) };
    store.insert_api_key(&globex_key.record, &globex_key.key_hash).await.unwrap();
    assert_eq!(store.export_api_keys(&acme).await.unwrap(), acme_keys, "by id, with their hashes");
    assert_eq!(store.export_api_keys(&globex).await.unwrap(), vec![globex_key]);
    assert!(store.export_api_keys(&new_id()).await.unwrap().is_empty());

    // Members, every role, by id.
    let members: Vec<MemberRecord> = Role::ALL
        .into_iter()
        .enumerate()
        .map(|(n, role)| member_record(&acme, &format!("person{n}@acme.test"), role))
        .collect();
    for member in &members {
        store.insert_member(member).await.unwrap();
    }
    store.insert_member(&member_record(&globex, "person0@acme.test", Role::Admin)).await.unwrap();
    assert_eq!(store.list_members(&acme, None, 100).await.unwrap().items, members);

    // Expired sign-ins are listed too (a move decides what to keep), ordered by hash.
    let now = now_millis();
    let live = state_record(&acme, "b-live", now + 600_000);
    let old = OAuthStateRecord { started_by: None, ..state_record(&globex, "a-old", now - 1) };
    // (An insert forgets expired states first: the expired one goes in last.)
    store.insert_oauth_state(&live).await.unwrap();
    store.insert_oauth_state(&old).await.unwrap();
    assert_eq!(store.list_oauth_states().await.unwrap(), vec![old, live]);

    // Connect sessions with their token hashes (used ones too), by id.
    let mut sessions = Vec::new();
    for (n, connection_id) in [(200, None), (201, Some(connections[0].id.clone()))] {
        let record = ConnectSessionRecord { connection_id, ..session_record(&acme, "alice") };
        store.insert_connect_session(&record, &key_hash(n)).await.unwrap();
        sessions.push(StoredConnectSession { record, token_hash: key_hash(n) });
    }
    let globex_session = StoredConnectSession { record: session_record(&globex, "bob"), token_hash: key_hash(202) };
    store.insert_connect_session(&globex_session.record, &globex_session.token_hash).await.unwrap();
    assert_eq!(store.export_connect_sessions(&acme).await.unwrap(), sessions, "by id, with their hashes");
    assert_eq!(store.export_connect_sessions(&globex).await.unwrap(), vec![globex_session]);
    assert!(store.export_connect_sessions(&new_id()).await.unwrap().is_empty());

    // Webhooks (by `list_webhooks`), the events of the outbox and the deliveries of every state,
    // each by id.
    let webhooks = [webhook_record(&acme, None), webhook_record(&acme, Some(&["connection.deleted"]))];
    for webhook in &webhooks {
        store.insert_webhook(webhook).await.unwrap();
    }
    let globex_webhook = webhook_record(&globex, None);
    store.insert_webhook(&globex_webhook).await.unwrap();
    assert_eq!(store.list_webhooks(&acme, None, 100).await.unwrap().items, webhooks);
    let events = [
        event_record(&acme, "connection.updated", &connections[1].id, 10),
        event_record(&acme, "connection.deleted", &connections[1].id, 20),
    ];
    assert!(store.update_connection_with(&connections[1], Effects { events: &events, ..Effects::NONE }).await.unwrap());
    let globex_event = event_record(&globex, "connection.updated", &globex_connection.id, 30);
    let effects = Effects { events: std::slice::from_ref(&globex_event), ..Effects::NONE };
    assert!(store.update_connection_with(&globex_connection, effects).await.unwrap());
    assert_eq!(store.export_events(&acme).await.unwrap(), events);
    assert_eq!(store.export_events(&globex).await.unwrap(), vec![globex_event.clone()]);
    // One delivered, one claimed: both listed as they are.
    let claimed = store.claim_deliveries("sender", 20, 1_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 2, "the first of each key and webhook");
    let first = pending_delivery(&events[0], &webhooks[0]);
    let attempt = Attempt { at: 25, status: Some(200), error: None, next: AttemptNext::Delivered };
    assert!(store.record_attempt(&first.id, "sender", &attempt).await.unwrap());
    let delivered = DeliveryRecord {
        state: DeliveryState::Delivered,
        attempts: 1,
        next_attempt_at: 25,
        last_status: Some(200),
        last_attempt_at: Some(25),
        ..first
    };
    let mut acme_deliveries =
        vec![delivered, pending_delivery(&events[1], &webhooks[0]), pending_delivery(&events[1], &webhooks[1])];
    acme_deliveries.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.export_deliveries(&acme).await.unwrap(), acme_deliveries);
    assert_eq!(store.export_deliveries(&globex).await.unwrap(), vec![pending_delivery(&globex_event, &globex_webhook)]);
    assert!(store.export_events(&new_id()).await.unwrap().is_empty());
    assert!(store.export_deliveries(&new_id()).await.unwrap().is_empty());

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

    // Keys of every kind as they were: times, scope, maker, and a revocation.
    let mut keys = Vec::new();
    for (n, record) in keys_of_every_kind(&tenant.id, &[new_id(), new_id()]).into_iter().enumerate() {
        let key = StoredApiKey { record: ApiKeyRecord { created_at: 77, ..record }, key_hash: key_hash(n) };
        store.import_api_key(&key).await.unwrap();
        assert_eq!(store.api_key_by_hash(&key.key_hash).await.unwrap(), Some(key.record.clone()));
        keys.push(key);
    }
    assert_eq!(
        message(store.import_api_key(&keys[0]).await.unwrap_err()),
        format!("API key {} or a key with its hash already exists", keys[0].record.id)
    );
    let orphan = StoredApiKey { record: api_key_record(&new_id()), key_hash: key_hash(99) };
    assert_eq!(
        message(store.import_api_key(&orphan).await.unwrap_err()),
        format!(
            "API key {} cannot be added: tenant {} is missing, or the key already exists",
            orphan.record.id, orphan.record.tenant_id
        )
    );
    assert_eq!(store.export_api_keys(&tenant.id).await.unwrap(), keys);

    // Members with their times.
    let member =
        MemberRecord { created_at: 3, updated_at: 4, ..member_record(&tenant.id, "ada@acme.test", Role::User) };
    store.insert_member(&member).await.unwrap();
    assert_eq!(store.list_members(&tenant.id, None, 10).await.unwrap().items, vec![member]);

    let connector = connector_record(&tenant.id);
    store.insert_connector(&connector).await.unwrap();
    let record = ConnectionRecord {
        status: ConnectionStatus::NeedsReauth,
        status_reason: Some("invalid_grant".to_owned()),
        tokens: Some(SealedBytes(awkward_bytes(3))),
        token_expires_at: Some(42),
        created_at: 5,
        updated_at: 6,
        updated_by: Some(format!("member:{}", new_id())),
        ..owned_connection(&tenant.id, &connector.id, "alice")
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

    // A share as it was; a second import replaces nothing.
    let share = ShareRecord { created_at: 10, updated_at: 20, ..share_record(&record, "bob", SharePermission::Edit) };
    store.import_share(&share).await.unwrap();
    assert_eq!(store.export_shares(&tenant.id).await.unwrap(), vec![share.clone()]);
    let changed = ShareRecord { permission: SharePermission::Use, updated_at: 30, ..share.clone() };
    assert_eq!(
        message(store.import_share(&changed).await.unwrap_err()),
        format!(
            "the share of connection {} with bob cannot be written: the connection is missing, or a share already \
             exists",
            record.id
        )
    );
    assert_eq!(store.list_shares(&tenant.id, &record.id).await.unwrap(), vec![share]);

    // An expired sign-in is imported as it is, and not forgotten by the next import.
    let now = now_millis();
    let expired = state_record(&tenant.id, "expired", now - 1_000);
    let live = state_record(&tenant.id, "live", now + 600_000);
    store.import_oauth_state(&expired).await.unwrap();
    store.import_oauth_state(&live).await.unwrap();
    assert_eq!(store.list_oauth_states().await.unwrap(), vec![expired, live.clone()]);
    assert_eq!(message(store.import_oauth_state(&live).await.unwrap_err()), "sign-in state already exists");
    assert_eq!(store.take_oauth_state("live", now).await.unwrap(), Some(live));

    // A connect session with its token hash, its connection and its completion: its link works.
    let session = StoredConnectSession {
        record: ConnectSessionRecord {
            created_at: 9,
            expires_at: now + 600_000,
            connection_id: Some(record.id.clone()),
            completed_at: Some(11),
            ..session_record(&tenant.id, "alice")
        },
        token_hash: key_hash(50),
    };
    store.import_connect_session(&session).await.unwrap();
    assert_eq!(store.export_connect_sessions(&tenant.id).await.unwrap(), vec![session.clone()]);
    assert_eq!(store.connect_session_by_token(&key_hash(50)).await.unwrap(), Some(session.record.clone()));
    assert_eq!(store.connect_session_of(&tenant.id, &record.id).await.unwrap(), Some(session.record.clone()));
    assert_eq!(
        message(store.import_connect_session(&session).await.unwrap_err()),
        format!("connect session {} or one with its token already exists", session.record.id)
    );
    let same_hash = StoredConnectSession { record: session_record(&tenant.id, "bob"), ..session.clone() };
    message(store.import_connect_session(&same_hash).await.unwrap_err());
    let orphan = StoredConnectSession { record: session_record(&new_id(), "bob"), token_hash: key_hash(51) };
    message(store.import_connect_session(&orphan).await.unwrap_err());

    // Events as they were, without a fan-out: their deliveries are imported as they were, with
    // their state, attempts and times, unclaimed.
    let webhook = WebhookRecord { created_at: 7, updated_at: 8, ..webhook_record(&tenant.id, None) };
    store.insert_webhook(&webhook).await.unwrap();
    let events: Vec<EventRecord> =
        [12, 13, 14].into_iter().map(|at| event_record(&tenant.id, "connection.updated", &record.id, at)).collect();
    for event in &events {
        store.import_event(event).await.unwrap();
    }
    assert_eq!(store.export_events(&tenant.id).await.unwrap(), events);
    assert!(store.export_deliveries(&tenant.id).await.unwrap().is_empty(), "no fan-out");
    assert_eq!(
        message(store.import_event(&events[0]).await.unwrap_err()),
        format!("event {} already exists", events[0].id)
    );
    let orphan_event = event_record(&new_id(), "connection.updated", &record.id, 12);
    assert_eq!(
        message(store.import_event(&orphan_event).await.unwrap_err()),
        format!(
            "event {} cannot be added: tenant {} is missing, or the event already exists",
            orphan_event.id, orphan_event.tenant_id
        )
    );

    let delivered = DeliveryRecord {
        state: DeliveryState::Delivered,
        attempts: 2,
        next_attempt_at: 15,
        last_status: Some(200),
        last_attempt_at: Some(15),
        ..pending_delivery(&events[0], &webhook)
    };
    let retrying = DeliveryRecord {
        attempts: 3,
        next_attempt_at: now - 1,
        last_status: Some(503),
        last_error: Some("busy".to_owned()),
        last_attempt_at: Some(16),
        ..pending_delivery(&events[1], &webhook)
    };
    let waiting = pending_delivery(&events[2], &webhook);
    for delivery in [&delivered, &retrying, &waiting] {
        store.import_delivery(delivery).await.unwrap();
    }
    assert_eq!(store.export_deliveries(&tenant.id).await.unwrap(), vec![delivered.clone(), retrying.clone(), waiting]);
    assert_eq!(
        store.delivery_queue().await.unwrap(),
        DeliveryQueue { pending: 2, oldest_pending: Some(13), next_due: Some(14) }
    );
    // Unclaimed, and ordered by their events' key: the retried one goes first, the last waits.
    let jobs = store.claim_deliveries("sender", now, now + 100, 10).await.unwrap();
    assert_eq!(jobs.into_iter().map(|job| job.delivery).collect::<Vec<_>>(), vec![retrying.clone()]);
    assert_eq!(
        message(store.import_delivery(&delivered).await.unwrap_err()),
        format!("delivery {} already exists", delivered.id)
    );
    let refused = |delivery: &DeliveryRecord| {
        format!(
            "delivery {} cannot be added: webhook {} or event {} is not in tenant {}, or the delivery already exists",
            delivery.id, delivery.webhook_id, delivery.event_id, delivery.tenant_id
        )
    };
    let other = Tenant { id: new_id(), name: "other".to_owned(), created_at: 1 };
    store.import_tenant(&other).await.unwrap();
    let other_webhook = webhook_record(&other.id, None);
    store.insert_webhook(&other_webhook).await.unwrap();
    for delivery in [
        // Its event is missing.
        pending_delivery(&orphan_event, &webhook),
        // Its webhook is missing, or another tenant's.
        pending_delivery(&events[0], &webhook_record(&tenant.id, None)),
        pending_delivery(&events[0], &other_webhook),
        // Its event is another tenant's.
        DeliveryRecord { tenant_id: other.id.clone(), ..pending_delivery(&events[0], &other_webhook) },
    ] {
        assert_eq!(message(store.import_delivery(&delivery).await.unwrap_err()), refused(&delivery));
    }
    assert_eq!(store.export_deliveries(&tenant.id).await.unwrap().len(), 3);
    assert!(store.export_deliveries(&other.id).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Tenants by id, and the changes that instances tell each other.

pub async fn a_tenant_is_found_by_id(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap();
    let globex = store.create_tenant("globex").await.unwrap();
    assert_eq!(store.tenant(&acme.id).await.unwrap(), Some(acme));
    assert_eq!(store.tenant(&globex.id).await.unwrap(), Some(globex));
    assert_eq!(store.tenant(&new_id()).await.unwrap(), None);
    assert_eq!(store.tenant("acme").await.unwrap(), None, "a name is not an id");
}

pub async fn every_change_survives_its_payload_and_reaches_other_instances(ctx: &Ctx) {
    let changes = [
        Change::Connection(new_id()),
        Change::Connector(new_id()),
        Change::ApiKey(new_id()),
        Change::Member(new_id()),
        // Split at the first colon only.
        Change::Member(format!("{}:{}", new_id(), new_id())),
        Change::Everything,
    ];
    for change in &changes {
        assert_eq!(Change::from_payload(&change.to_payload()), *change, "{}", change.to_payload());
    }
    assert_eq!(Change::from_payload("tenant:1"), Change::Everything, "what is not understood drops everything");

    // Where other processes share the store (PostgreSQL), another instance hears each change
    // as it was published, in order.
    let other = ctx.reopen().await;
    let subscription = other.store().subscribe_changes().await.unwrap();
    for change in &changes {
        ctx.store().publish_change(change).await.unwrap();
    }
    if let Some(mut heard) = subscription {
        for change in &changes {
            let received = tokio::time::timeout(std::time::Duration::from_secs(10), heard.recv()).await;
            assert_eq!(received.expect("heard within 10 s").as_ref(), Some(change));
        }
    }
    other.finish().await;
}

// ---------------------------------------------------------------------------------------------
// API keys.

pub async fn an_api_key_round_trips_exactly(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    // Not in id order: the scope is kept as given.
    let scope: Vec<String> = [new_id(), new_id(), new_id()].into_iter().rev().collect();
    let record = ApiKeyRecord {
        name: "Zoë's weekly report \u{1F4CA}".to_owned(),
        role: Role::User,
        end_user_id: Some("alice@example.test".to_owned()),
        connection_ids: Some(scope),
        expires_at: Some(now_millis() + 3_600_000),
        created_by: Some(format!("member:{}", new_id())),
        ..api_key_record(&acme)
    };
    store.insert_api_key(&record, &key_hash(1)).await.unwrap();
    assert_eq!(store.api_key_by_hash(&key_hash(1)).await.unwrap(), Some(record.clone()));
    assert_eq!(store.api_key(&acme, &record.id).await.unwrap(), Some(record.clone()));
    assert_eq!(store.list_api_keys(&acme, false, None, 10).await.unwrap().items, vec![record.clone()]);
    assert_eq!(store.api_key(&globex, &record.id).await.unwrap(), None, "another tenant's key is missing");
    assert_eq!(store.api_key(&acme, &new_id()).await.unwrap(), None);

    // Every role; a scope of no connection, which is not the absence of a scope; no maker.
    for (n, role) in Role::ALL.into_iter().enumerate() {
        let record = ApiKeyRecord { role, connection_ids: Some(Vec::new()), created_by: None, ..api_key_record(&acme) };
        store.insert_api_key(&record, &key_hash(10 + n)).await.unwrap();
        assert_eq!(store.api_key(&acme, &record.id).await.unwrap(), Some(record), "{role}");
    }
}

pub async fn a_revoked_key_is_found_by_hash_with_its_revocation_time(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap().id;
    let key = api_key_record(&acme);
    store.insert_api_key(&key, &key_hash(1)).await.unwrap();
    let at = now_millis();
    assert!(store.revoke_api_key(&acme, &key.id, at).await.unwrap());

    // So that the caller can tell a revoked key from an unknown one.
    let revoked = ApiKeyRecord { revoked_at: Some(at), ..key.clone() };
    assert_eq!(store.api_key_by_hash(&key_hash(1)).await.unwrap(), Some(revoked.clone()));
    assert_eq!(store.api_key(&acme, &key.id).await.unwrap(), Some(revoked));
}

pub async fn a_key_is_revoked_once_and_only_by_its_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    let key = api_key_record(&acme);
    store.insert_api_key(&key, &key_hash(1)).await.unwrap();
    let revoked_at = async || store.api_key(&acme, &key.id).await.unwrap().expect("the key").revoked_at;

    assert!(!store.revoke_api_key(&globex, &key.id, 5).await.unwrap(), "another tenant's key is missing");
    assert_eq!(revoked_at().await, None);
    assert!(store.revoke_api_key(&acme, &key.id, 10).await.unwrap());
    assert!(!store.revoke_api_key(&acme, &key.id, 20).await.unwrap(), "revoked already");
    assert_eq!(revoked_at().await, Some(10), "the first revocation's time stays");
    assert!(!store.revoke_api_key(&acme, &new_id(), 30).await.unwrap());
}

pub async fn api_keys_are_listed_by_id_without_revoked_ones_unless_asked(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    let mut keys = Vec::new();
    for n in 0..6 {
        let record = api_key_record(&acme);
        store.insert_api_key(&record, &key_hash(n)).await.unwrap();
        keys.push(record);
    }
    let globex_key = api_key_record(&globex);
    store.insert_api_key(&globex_key, &key_hash(100)).await.unwrap();
    // Every third key, the first included: pages skip them wherever they are.
    for key in keys.iter_mut().step_by(3) {
        assert!(store.revoke_api_key(&acme, &key.id, 77).await.unwrap());
        key.revoked_at = Some(77);
    }
    let live: Vec<ApiKeyRecord> = keys.iter().filter(|key| key.revoked_at.is_none()).cloned().collect();

    let listed = pages(async |after| store.list_api_keys(&acme, false, after.as_deref(), 2).await.unwrap()).await;
    assert_eq!(listed.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 0], "four live keys, two a page");
    assert_eq!(listed.concat(), live);
    let listed = pages(async |after| store.list_api_keys(&acme, true, after.as_deref(), 4).await.unwrap()).await;
    assert_eq!(listed.iter().map(Vec::len).collect::<Vec<_>>(), [4, 2]);
    assert_eq!(listed.concat(), keys);

    assert_eq!(store.list_api_keys(&globex, true, None, 10).await.unwrap().items, vec![globex_key]);
    assert!(store.list_api_keys(&new_id(), true, None, 10).await.unwrap().items.is_empty());
}

/// Rows as a Portico before migration 0004 wrote them (its columns only) read back with what
/// they meant then: every key was its tenant's admin key, every connection the tenant's.
pub async fn keys_and_connections_made_before_roles_read_as_the_tenants(ctx: &Ctx) {
    let store = ctx.store();
    let acme = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&acme);
    store.insert_connector(&connector).await.unwrap();
    let (key_id, connection_id) = (new_id(), new_id());
    let database = ctx.database();
    database.execute(
        "INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, 1234)",
        &[&key_id, &acme, &key_hash(1)],
    );
    database.execute(
        "INSERT INTO connections (id, tenant_id, connector_id, created_by_key, display_name, status, parameters, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, 'Old', 'connected', '{}', 5, 6)",
        &[&connection_id, &acme, &connector.id, &key_id],
    );

    let key = ApiKeyRecord {
        id: key_id.clone(),
        tenant_id: acme.clone(),
        name: "admin".to_owned(),
        role: Role::Admin,
        end_user_id: None,
        connection_ids: None,
        expires_at: None,
        created_by: None,
        created_at: 1234,
        revoked_at: None,
        rate_limit: None,
    };
    assert_eq!(store.api_key_by_hash(&key_hash(1)).await.unwrap(), Some(key.clone()));
    assert_eq!(store.list_api_keys(&acme, false, None, 10).await.unwrap().items, vec![key], "not revoked");

    let connection = store.connection(&acme, &connection_id).await.unwrap().unwrap();
    assert_eq!(
        (connection.end_user_id, connection.created_by, connection.updated_by),
        (None, key_id, None),
        "the tenant's, made by the bare key id"
    );
}

// ---------------------------------------------------------------------------------------------
// Connections by owner, visibility and id.

/// acme's connections on two connectors, some owned by end users and some shared, and a
/// connection of globex beside them. Each is named after its owner and connector.
struct Owners {
    acme: String,
    globex: String,
    x: String,
    y: String,
    alice_x: ConnectionRecord,
    alice_y: ConnectionRecord,
    /// Shared with alice.
    bob_x: ConnectionRecord,
    /// Shared with carol.
    bob_y: ConnectionRecord,
    tenant_x: ConnectionRecord,
    /// The tenant's, shared with alice.
    tenant_y: ConnectionRecord,
    /// Shared with bob in globex.
    globex_alice: ConnectionRecord,
}

impl Owners {
    async fn make(store: &dyn Store) -> Owners {
        let (acme, globex, x, globex_connector) = two_tenants(store).await;
        let y = connector_record(&acme);
        store.insert_connector(&y).await.unwrap();
        let connection = async |name: &str, connector: &ConnectorRecord, owner: Option<&str>| {
            let record = ConnectionRecord {
                display_name: name.to_owned(),
                end_user_id: owner.map(str::to_owned),
                ..connection_record(&connector.tenant_id, &connector.id)
            };
            store.insert_connection(&record).await.unwrap();
            record
        };
        let owners = Owners {
            alice_x: connection("alice_x", &x, Some("alice")).await,
            alice_y: connection("alice_y", &y, Some("alice")).await,
            bob_x: connection("bob_x", &x, Some("bob")).await,
            bob_y: connection("bob_y", &y, Some("bob")).await,
            tenant_x: connection("tenant_x", &x, None).await,
            tenant_y: connection("tenant_y", &y, None).await,
            globex_alice: connection("globex_alice", &globex_connector, Some("alice")).await,
            acme,
            globex,
            x: x.id,
            y: y.id,
        };
        for (connection, end_user) in [
            (&owners.bob_x, "alice"),
            (&owners.bob_y, "carol"),
            (&owners.tenant_y, "alice"),
            (&owners.globex_alice, "bob"),
        ] {
            store.put_share(&share_record(connection, end_user, SharePermission::Use)).await.unwrap();
        }
        owners
    }
}

/// The display names of `records` in id order: what a listing of them gives.
fn names_in_id_order<'a>(records: impl IntoIterator<Item = &'a ConnectionRecord>) -> Vec<String> {
    let mut records: Vec<&ConnectionRecord> = records.into_iter().collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records.into_iter().map(|record| record.display_name.clone()).collect()
}

pub async fn connections_are_listed_by_owner_visibility_ids_and_connector(ctx: &Ctx) {
    let store = ctx.store();
    let o = Owners::make(store).await;
    // A share row of globex that names acme's connection, as damaged data might have it: a
    // listing of acme does not follow it.
    ctx.database().execute(
        "INSERT INTO connection_shares (tenant_id, connection_id, end_user_id, permission, created_by, created_at, \
         updated_at) VALUES ($1, $2, 'alice', 'use', 'operator', 1, 1)",
        &[&o.globex, &o.bob_y.id],
    );
    let some_ids = [o.tenant_y.id.clone(), o.alice_x.id.clone(), o.globex_alice.id.clone(), new_id()];
    let bobs_and_tenant_x = [o.bob_x.id.clone(), o.bob_y.id.clone(), o.tenant_x.id.clone()];
    let all = [&o.alice_x, &o.alice_y, &o.bob_x, &o.bob_y, &o.tenant_x, &o.tenant_y];
    let query = EVERY_CONNECTION;
    let cases = [
        ("every connection", query, all.to_vec()),
        ("owned by alice", ConnectionQuery { owner: Some("alice"), ..query }, vec![&o.alice_x, &o.alice_y]),
        ("owned by carol, who owns none", ConnectionQuery { owner: Some("carol"), ..query }, vec![]),
        (
            "visible to alice: hers, and bob's and the tenant's shared with her",
            ConnectionQuery { visible_to: Some("alice"), ..query },
            vec![&o.alice_x, &o.alice_y, &o.bob_x, &o.tenant_y],
        ),
        ("visible to bob", ConnectionQuery { visible_to: Some("bob"), ..query }, vec![&o.bob_x, &o.bob_y]),
        ("visible to carol", ConnectionQuery { visible_to: Some("carol"), ..query }, vec![&o.bob_y]),
        ("visible to dave, who has nothing", ConnectionQuery { visible_to: Some("dave"), ..query }, vec![]),
        (
            "these ids, of this tenant only",
            ConnectionQuery { ids: Some(&some_ids), ..query },
            vec![&o.alice_x, &o.tenant_y],
        ),
        ("no ids", ConnectionQuery { ids: Some(&[]), ..query }, vec![]),
        (
            "on x, visible to alice",
            ConnectionQuery { connector_id: Some(&o.x), visible_to: Some("alice"), ..query },
            vec![&o.alice_x, &o.bob_x],
        ),
        (
            "on y, owned by bob",
            ConnectionQuery { connector_id: Some(&o.y), owner: Some("bob"), ..query },
            vec![&o.bob_y],
        ),
        (
            "these ids, visible to alice",
            ConnectionQuery { ids: Some(&bobs_and_tenant_x), visible_to: Some("alice"), ..query },
            vec![&o.bob_x],
        ),
        (
            "owned by bob, visible to alice",
            ConnectionQuery { owner: Some("bob"), visible_to: Some("alice"), ..query },
            vec![&o.bob_x],
        ),
    ];
    for (what, query, expected) in cases {
        let listed = store.list_connections(&o.acme, &query, None, 100).await.unwrap();
        assert_eq!(names_in_id_order(&listed.items), names_in_id_order(expected), "{what}");
        assert!(listed.items.iter().all(|record| all.contains(&record)), "{what}: exactly as stored");
    }

    let in_globex = ConnectionQuery { visible_to: Some("alice"), ..query };
    let listed = store.list_connections(&o.globex, &in_globex, None, 100).await.unwrap();
    assert_eq!(listed.items, vec![o.globex_alice.clone()], "globex shows alice her own there, nothing of acme's");
}

pub async fn connections_visible_to_an_end_user_page_by_id(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, _globex, connector, _) = two_tenants(store).await;
    let mut expected = Vec::new();
    for _ in 0..4 {
        // Interleaved with bob's unshared ones, which the pages skip.
        store.insert_connection(&owned_connection(&acme, &connector.id, "bob")).await.unwrap();
        let hers = owned_connection(&acme, &connector.id, "alice");
        store.insert_connection(&hers).await.unwrap();
        let shared = owned_connection(&acme, &connector.id, "bob");
        store.insert_connection(&shared).await.unwrap();
        store.put_share(&share_record(&shared, "alice", SharePermission::Edit)).await.unwrap();
        expected.extend([hers.id, shared.id]);
    }

    let visible = ConnectionQuery { visible_to: Some("alice"), ..EVERY_CONNECTION };
    let listed = pages(async |after| store.list_connections(&acme, &visible, after.as_deref(), 3).await.unwrap()).await;
    assert_eq!(listed.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
    assert_eq!(listed.concat().into_iter().map(|record| record.id).collect::<Vec<_>>(), expected);
}

// ---------------------------------------------------------------------------------------------
// Shares.

pub async fn a_share_put_again_changes_its_permission_and_keeps_its_creation(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, _globex, connection) = alices_connection(store).await;
    let share = share_record(&connection, "bob", SharePermission::Use);
    store.put_share(&share).await.unwrap();
    assert_eq!(store.list_shares(&acme, &connection.id).await.unwrap(), vec![share.clone()]);

    let again = ShareRecord {
        permission: SharePermission::Edit,
        created_by: format!("member:{}", new_id()),
        created_at: share.created_at + 1_000,
        updated_at: share.updated_at + 1_000,
        ..share.clone()
    };
    store.put_share(&again).await.unwrap();
    let changed = ShareRecord { permission: SharePermission::Edit, updated_at: again.updated_at, ..share };
    assert_eq!(store.list_shares(&acme, &connection.id).await.unwrap(), vec![changed]);
}

pub async fn shares_are_listed_by_end_user_within_their_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, connection) = alices_connection(store).await;
    let other = owned_connection(&acme, &connection.connector_id, "alice");
    store.insert_connection(&other).await.unwrap();
    store.put_share(&share_record(&other, "dave", SharePermission::Use)).await.unwrap();
    // Byte order, as ids: capitals first, accents last, whatever the database's locale.
    let mut shares = Vec::new();
    for end_user in ["carol", "Bob", "émile", "bob", "Zoë", "alice"] {
        let share = share_record(&connection, end_user, SharePermission::Use);
        store.put_share(&share).await.unwrap();
        shares.push(share);
    }
    shares.sort_by(|a, b| a.end_user_id.cmp(&b.end_user_id));
    assert_eq!(store.list_shares(&acme, &connection.id).await.unwrap(), shares);
    assert!(store.list_shares(&globex, &connection.id).await.unwrap().is_empty(), "acme's, not globex's");
    assert!(store.list_shares(&acme, &new_id()).await.unwrap().is_empty());
}

pub async fn a_share_is_deleted_once_and_only_by_its_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, connection) = alices_connection(store).await;
    let (bob, carol) = (
        share_record(&connection, "bob", SharePermission::Use),
        share_record(&connection, "carol", SharePermission::Use),
    );
    store.put_share(&bob).await.unwrap();
    store.put_share(&carol).await.unwrap();

    assert!(!store.delete_share(&globex, &connection.id, "bob").await.unwrap(), "another tenant's share is missing");
    assert!(store.delete_share(&acme, &connection.id, "bob").await.unwrap());
    assert!(!store.delete_share(&acme, &connection.id, "bob").await.unwrap(), "deleted already");
    assert!(!store.delete_share(&acme, &connection.id, "dave").await.unwrap());
    assert_eq!(store.list_shares(&acme, &connection.id).await.unwrap(), vec![carol]);
}

pub async fn a_share_needs_a_connection_of_its_own_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, connection) = alices_connection(store).await;
    let missing = connection_record(&acme, &connection.connector_id);
    let in_globex =
        ShareRecord { tenant_id: globex.clone(), ..share_record(&connection, "bob", SharePermission::Edit) };

    for share in [share_record(&missing, "bob", SharePermission::Use), in_globex] {
        let error = store.put_share(&share).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    }
    assert!(store.export_shares(&acme).await.unwrap().is_empty());
    assert!(store.export_shares(&globex).await.unwrap().is_empty());
}

pub async fn deleting_a_connection_or_its_connector_deletes_its_shares(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, _globex, doomed_connector, _) = two_tenants(store).await;
    let kept_connector = connector_record(&acme);
    store.insert_connector(&kept_connector).await.unwrap();
    let deleted = owned_connection(&acme, &kept_connector.id, "alice");
    let cascaded = owned_connection(&acme, &doomed_connector.id, "alice");
    let kept = owned_connection(&acme, &kept_connector.id, "alice");
    for connection in [&deleted, &cascaded, &kept] {
        store.insert_connection(connection).await.unwrap();
        for end_user in ["bob", "carol"] {
            store.put_share(&share_record(connection, end_user, SharePermission::Use)).await.unwrap();
        }
    }
    let kept_shares = store.list_shares(&acme, &kept.id).await.unwrap();

    assert!(store.delete_connection(&acme, &deleted.id).await.unwrap());
    assert!(store.list_shares(&acme, &deleted.id).await.unwrap().is_empty());
    assert_eq!(
        store.delete_connector(&acme, &doomed_connector.id, true).await.unwrap(),
        DeleteConnector::Deleted { connections: 1 }
    );
    assert!(store.list_shares(&acme, &cascaded.id).await.unwrap().is_empty());
    assert_eq!(store.export_shares(&acme).await.unwrap(), kept_shares, "only the kept connection's remain");
}

// ---------------------------------------------------------------------------------------------
// Members.

pub async fn a_member_round_trips_and_an_address_is_unique_within_a_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    let ada = member_record(&acme, "ada@example.test", Role::Author);
    store.insert_member(&ada).await.unwrap();
    assert_eq!(store.member(&acme, &ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(store.member(&globex, &ada.id).await.unwrap(), None, "another tenant's member is missing");
    assert_eq!(store.member(&acme, &new_id()).await.unwrap(), None);

    for refused in [
        member_record(&acme, "ada@example.test", Role::User),
        MemberRecord { email: "other@example.test".to_owned(), ..ada.clone() },
        member_record(&new_id(), "ada@example.test", Role::User),
    ] {
        let error = store.insert_member(&refused).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{refused:?}: {error:?}");
    }
    assert_eq!(store.list_members(&acme, None, 10).await.unwrap().items, vec![ada.clone()]);

    // The same person in another tenant; sign-in finds both.
    let ada_at_globex = MemberRecord { created_by: None, ..member_record(&globex, "ada@example.test", Role::Admin) };
    store.insert_member(&ada_at_globex).await.unwrap();
    store.insert_member(&member_record(&acme, "grace@example.test", Role::User)).await.unwrap();
    assert_eq!(store.members_by_email("ada@example.test").await.unwrap(), vec![ada, ada_at_globex], "by id");
    assert!(store.members_by_email("nobody@example.test").await.unwrap().is_empty());
}

pub async fn members_page_by_id_within_their_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    let mut members = Vec::new();
    for n in 0..5 {
        // Interleaved with globex's, which the pages skip.
        store.insert_member(&member_record(&globex, &format!("{n}@globex.test"), Role::User)).await.unwrap();
        let member = member_record(&acme, &format!("{n}@acme.test"), Role::ALL[n % 3]);
        store.insert_member(&member).await.unwrap();
        members.push(member);
    }
    let listed = pages(async |after| store.list_members(&acme, after.as_deref(), 2).await.unwrap()).await;
    assert_eq!(listed.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(listed.concat(), members);
    assert!(store.list_members(&new_id(), None, 10).await.unwrap().items.is_empty());
}

pub async fn update_member_changes_the_role_only(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    let member = member_record(&acme, "ada@example.test", Role::User);
    store.insert_member(&member).await.unwrap();

    let rewritten = MemberRecord {
        email: "eve@example.test".to_owned(),
        role: Role::Admin,
        created_by: Some("operator".to_owned()),
        created_at: 1,
        updated_at: member.updated_at + 1_000,
        ..member.clone()
    };
    assert!(store.update_member(&rewritten).await.unwrap());
    let promoted = MemberRecord { role: Role::Admin, updated_at: rewritten.updated_at, ..member.clone() };
    assert_eq!(store.member(&acme, &member.id).await.unwrap(), Some(promoted.clone()));

    let hijack = MemberRecord { tenant_id: globex, role: Role::User, ..promoted.clone() };
    assert!(!store.update_member(&hijack).await.unwrap(), "another tenant's member is missing");
    assert!(!store.update_member(&MemberRecord { id: new_id(), ..promoted.clone() }).await.unwrap());
    assert_eq!(store.member(&acme, &member.id).await.unwrap(), Some(promoted));
}

pub async fn a_member_is_deleted_once_and_only_by_its_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    let member = member_record(&acme, "ada@example.test", Role::User);
    store.insert_member(&member).await.unwrap();

    assert!(!store.delete_member(&globex, &member.id).await.unwrap(), "another tenant's member is missing");
    assert!(store.delete_member(&acme, &member.id).await.unwrap());
    assert!(!store.delete_member(&acme, &member.id).await.unwrap(), "deleted already");
    assert_eq!(store.member(&acme, &member.id).await.unwrap(), None);
    // The address is free again.
    store.insert_member(&member_record(&acme, "ada@example.test", Role::Admin)).await.unwrap();
}
