//! What the store's tests share: the records they write, and [`Ctx`], a fresh store on either
//! engine, on a database of one test from `portico-testkit` (a SQLite file in a temporary
//! directory, or a PostgreSQL database of its own, dropped afterwards; see
//! `portico_testkit::pg` for the server it is made on and when its tests are skipped).

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use portico_model::{Connector, Diagnostic, Role, SharePermission};
use portico_store::{
    ApiKeyRecord, ConnectSessionRecord, ConnectionQuery, ConnectionRecord, ConnectionStatus, ConnectorRecord,
    DeliveryRecord, DeliveryState, EventRecord, MemberRecord, OAuthStateRecord, Page, PgOptions, PgStore, SealedBytes,
    ShareRecord, SqliteStore, Store, WebhookRecord, new_id, now_millis,
};
use portico_testkit::database::{Database, Engine};
use serde_json::json;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

// ---------------------------------------------------------------------------------------------
// Records.

pub fn fixture_connector() -> Connector {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("connector.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn fixture_warnings() -> Vec<Diagnostic> {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("warnings.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Bytes that a text column would mangle: every byte value, NULs, invalid UTF-8.
pub fn awkward_bytes(seed: u8) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255u8).map(|b| b.wrapping_add(seed)).collect();
    bytes.extend_from_slice(&[0, 0, 0xff, 0xfe, 0xc3, 0x28, 0]);
    bytes
}

pub fn connector_record(tenant_id: &str) -> ConnectorRecord {
    let now = now_millis();
    ConnectorRecord {
        id: new_id(),
        tenant_id: tenant_id.to_owned(),
        connector: fixture_connector(),
        warnings: fixture_warnings(),
        oauth_client_id: Some("contoso-portico".to_owned()),
        oauth_client_secret: Some(SealedBytes(awkward_bytes(1))),
        created_by: Some(format!("key:{}", new_id())),
        updated_by: Some(format!("member:{}", new_id())),
        created_at: now,
        updated_at: now,
    }
}

pub fn connection_record(tenant_id: &str, connector_id: &str) -> ConnectionRecord {
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
        end_user_id: None,
        created_by: format!("key:{}", new_id()),
        updated_by: None,
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

pub fn state_record(tenant_id: &str, hash: &str, expires_at: i64) -> OAuthStateRecord {
    OAuthStateRecord {
        state_hash: hash.to_owned(),
        tenant_id: tenant_id.to_owned(),
        connection_id: new_id(),
        verifier: SealedBytes(awkward_bytes(1)),
        redirect_uri: "http://127.0.0.1/oauth/callback".to_owned(),
        return_url: Some("http://127.0.0.1/done".to_owned()),
        sealed_return_url: Some(SealedBytes(awkward_bytes(5))),
        started_by: Some(format!("member:{}", new_id())),
        created_at: 1,
        expires_at,
    }
}

/// A connection of `tenant_id` that the end user `owner` owns.
pub fn owned_connection(tenant_id: &str, connector_id: &str, owner: &str) -> ConnectionRecord {
    ConnectionRecord { end_user_id: Some(owner.to_owned()), ..connection_record(tenant_id, connector_id) }
}

/// An admin key of `tenant_id` with nothing optional set but its maker.
pub fn api_key_record(tenant_id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: new_id(),
        tenant_id: tenant_id.to_owned(),
        name: "deploy pipeline".to_owned(),
        role: Role::Admin,
        end_user_id: None,
        connection_ids: None,
        expires_at: None,
        created_by: Some("operator".to_owned()),
        created_at: now_millis(),
        revoked_at: None,
        rate_limit: None,
    }
}

/// A key hash (64 hex digits) that no other `n` gives.
pub fn key_hash(n: usize) -> String {
    format!("{n:064x}")
}

/// Keys of every kind, made in this order: an admin key, an author's that expires, a user's
/// that acts as `alice`, one of hers narrowed to `connection_ids`, and bob's, revoked.
pub fn keys_of_every_kind(tenant_id: &str, connection_ids: &[String]) -> Vec<ApiKeyRecord> {
    let now = now_millis();
    let alice = Some("alice".to_owned());
    vec![
        api_key_record(tenant_id),
        ApiKeyRecord {
            name: "docs build".to_owned(),
            role: Role::Author,
            expires_at: Some(now + 86_400_000),
            created_by: Some(format!("member:{}", new_id())),
            ..api_key_record(tenant_id)
        },
        ApiKeyRecord {
            name: "alice's phone".to_owned(),
            role: Role::User,
            end_user_id: alice.clone(),
            created_by: Some(format!("key:{}", new_id())),
            ..api_key_record(tenant_id)
        },
        ApiKeyRecord {
            name: "alice's weekly report".to_owned(),
            role: Role::User,
            end_user_id: alice,
            connection_ids: Some(connection_ids.to_vec()),
            rate_limit: Some(25),
            ..api_key_record(tenant_id)
        },
        ApiKeyRecord {
            name: "bob's old laptop".to_owned(),
            role: Role::User,
            end_user_id: Some("bob".to_owned()),
            revoked_at: Some(now + 1),
            ..api_key_record(tenant_id)
        },
    ]
}

pub fn member_record(tenant_id: &str, email: &str, role: Role) -> MemberRecord {
    let now = now_millis();
    MemberRecord {
        id: new_id(),
        tenant_id: tenant_id.to_owned(),
        email: email.to_owned(),
        role,
        created_by: Some(format!("member:{}", new_id())),
        created_at: now,
        updated_at: now,
    }
}

pub fn share_record(connection: &ConnectionRecord, end_user_id: &str, permission: SharePermission) -> ShareRecord {
    let now = now_millis();
    ShareRecord {
        tenant_id: connection.tenant_id.clone(),
        connection_id: connection.id.clone(),
        end_user_id: end_user_id.to_owned(),
        permission,
        created_by: format!("key:{}", new_id()),
        created_at: now,
        updated_at: now,
    }
}

/// A webhook of `tenant_id`, enabled, taking `events` (`None`: all), with sealed secrets of
/// every byte value.
pub fn webhook_record(tenant_id: &str, events: Option<&[&str]>) -> WebhookRecord {
    let now = now_millis();
    WebhookRecord {
        id: new_id(),
        tenant_id: tenant_id.to_owned(),
        url: format!("https://app.example/hooks/{}", new_id()),
        events: events.map(|kinds| kinds.iter().map(|kind| (*kind).to_owned()).collect()),
        enabled: true,
        secrets: SealedBytes(awkward_bytes(11)),
        created_by: format!("key:{}", new_id()),
        created_at: now,
        updated_at: now,
    }
}

/// A connect session of `tenant_id` for `end_user`, offering two connectors, with every field
/// set but what its connection sets, expiring in ten minutes.
pub fn session_record(tenant_id: &str, end_user: &str) -> ConnectSessionRecord {
    let now = now_millis();
    ConnectSessionRecord {
        id: new_id(),
        tenant_id: tenant_id.to_owned(),
        end_user_id: end_user.to_owned(),
        app_name: Some("Acme CRM".to_owned()),
        connector_ids: Some(vec![new_id(), new_id()]),
        return_url: Some("https://app.example/connected?from=portico&x=1".to_owned()),
        created_by: format!("key:{}", new_id()),
        created_at: now,
        expires_at: now + 600_000,
        connection_id: None,
        completed_at: None,
    }
}

/// An event `kind` of tenant `tenant_id` about `ordering_key`, at `created_at`; its id sorts
/// after every event made before it.
pub fn event_record(tenant_id: &str, kind: &str, ordering_key: &str, created_at: i64) -> EventRecord {
    let id = format!("evt_{}", new_id());
    EventRecord {
        payload: json!({"type": kind, "id": id, "data": {"connectionId": ordering_key}}).to_string(),
        id,
        tenant_id: tenant_id.to_owned(),
        kind: kind.to_owned(),
        ordering_key: ordering_key.to_owned(),
        created_at,
    }
}

/// The delivery of `event` to `webhook` as the fan-out makes it: pending, due when the event
/// happened, never tried.
pub fn pending_delivery(event: &EventRecord, webhook: &WebhookRecord) -> DeliveryRecord {
    DeliveryRecord {
        id: format!("{}:{}", event.id, webhook.id),
        tenant_id: event.tenant_id.clone(),
        webhook_id: webhook.id.clone(),
        event_id: event.id.clone(),
        event_kind: event.kind.clone(),
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: event.created_at,
        last_status: None,
        last_error: None,
        last_attempt_at: None,
        created_at: event.created_at,
    }
}

/// Every connection of the tenant.
pub const EVERY_CONNECTION: ConnectionQuery<'static> =
    ConnectionQuery { connector_id: None, owner: None, visible_to: None, ids: None };

/// The connections of one connector.
pub fn of_connector(connector_id: &str) -> ConnectionQuery<'_> {
    ConnectionQuery { connector_id: Some(connector_id), ..EVERY_CONNECTION }
}

/// Every page of a list, `fetch` reading the page after a cursor; each page as it came.
pub async fn pages<T>(mut fetch: impl AsyncFnMut(Option<String>) -> Page<T>) -> Vec<Vec<T>> {
    let (mut pages, mut cursor) = (Vec::new(), None);
    loop {
        let page = fetch(cursor.take()).await;
        pages.push(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
    }
}

/// Two tenants, each with one connector.
pub async fn two_tenants(store: &dyn Store) -> (String, String, ConnectorRecord, ConnectorRecord) {
    let acme = store.create_tenant("acme").await.unwrap().id;
    let globex = store.create_tenant("globex").await.unwrap().id;
    let acme_connector = connector_record(&acme);
    let globex_connector = connector_record(&globex);
    store.insert_connector(&acme_connector).await.unwrap();
    store.insert_connector(&globex_connector).await.unwrap();
    (acme, globex, acme_connector, globex_connector)
}

/// Two tenants, and a connection of the first that the end user alice owns.
pub async fn alices_connection(store: &dyn Store) -> (String, String, ConnectionRecord) {
    let (acme, globex, connector, _) = two_tenants(store).await;
    let connection = owned_connection(&acme, &connector.id, "alice");
    store.insert_connection(&connection).await.unwrap();
    (acme, globex, connection)
}

// ---------------------------------------------------------------------------------------------
// Engines.

/// A store of one engine on a fresh database, which goes away with the last `Ctx` on it.
pub struct Ctx {
    store: EngineStore,
    database: Arc<Database>,
}

#[derive(Clone)]
enum EngineStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Ctx {
    /// A store on a new SQLite file.
    pub async fn sqlite() -> Ctx {
        Ctx::open(Arc::new(Database::sqlite())).await
    }

    /// [`Ctx::sqlite`], in the shape of [`Ctx::postgres`] for the test macro.
    pub async fn sqlite_test() -> Option<Ctx> {
        Some(Ctx::sqlite().await)
    }

    /// A store on a new PostgreSQL database; `None` (after saying so) when PostgreSQL is not
    /// reachable and the run is not CI.
    pub async fn postgres() -> Option<Ctx> {
        Some(Ctx::open(Arc::new(Database::try_postgres()?)).await)
    }

    /// A store on `database`, as a process opens it: the migrations run.
    async fn open(database: Arc<Database>) -> Ctx {
        let store = match database.engine() {
            Engine::Sqlite => EngineStore::Sqlite(SqliteStore::open(database.url()).await.unwrap()),
            Engine::Postgres => {
                EngineStore::Postgres(PgStore::open_with(database.url(), test_pg_options()).await.unwrap())
            }
        };
        Ctx { store, database }
    }

    pub fn store(&self) -> &dyn Store {
        match &self.store {
            EngineStore::Sqlite(store) => store,
            EngineStore::Postgres(store) => store,
        }
    }

    pub fn shared(&self) -> Arc<dyn Store> {
        match &self.store {
            EngineStore::Sqlite(store) => Arc::new(store.clone()),
            EngineStore::Postgres(store) => Arc::new(store.clone()),
        }
    }

    /// The PostgreSQL store (panics on SQLite).
    pub fn pg(&self) -> &PgStore {
        match &self.store {
            EngineStore::Postgres(store) => store,
            EngineStore::Sqlite(_) => panic!("not a PostgreSQL store"),
        }
    }

    /// The store's database, for statements beside the store.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Closes this store's connections.
    pub async fn close(&self) {
        match &self.store {
            EngineStore::Sqlite(store) => store.close().await,
            EngineStore::Postgres(store) => store.close().await,
        }
    }

    /// Another store on the same database, as a restarted process (or another instance)
    /// opens it: the migrations run again.
    pub async fn reopen(&self) -> Ctx {
        Ctx::open(self.database.clone()).await
    }

    /// The versions of the migrations that the database records as applied.
    pub fn applied_migrations(&self) -> Vec<i64> {
        let versions = self.database.strings("SELECT CAST(version AS TEXT) FROM _sqlx_migrations ORDER BY version");
        versions.iter().map(|version| version.parse().unwrap()).collect()
    }

    /// The versions of the migrations that the store applies on its engine.
    pub fn known_migrations(&self) -> Vec<i64> {
        let migrator = match self.store {
            EngineStore::Sqlite(_) => SqliteStore::migrator(),
            EngineStore::Postgres(_) => PgStore::migrator(),
        };
        migrator.iter().map(|migration| migration.version).collect()
    }

    /// Closes the store; the database goes with the last `Ctx` on it.
    pub async fn finish(self) {
        self.close().await;
    }
}

/// Small pools: the tests of both engines run side by side on one shared server.
pub fn test_pg_options() -> PgOptions {
    PgOptions { max_connections: 5, ..PgOptions::default() }
}

/// Instantiates every engine-generic test of `behaviour` on one engine: `$open` is an async
/// expression giving `Option<Ctx>` (`None`: skipped).
#[macro_export]
macro_rules! behaviour_tests {
    ($open:expr) => {
        $crate::behaviour_tests!(@each $open;
            tenants_are_created_found_by_name_and_counted,
            audit_events_list_by_tenant_and_filter_with_cursors,
            a_second_tenant_with_the_same_name_is_a_conflict,
            api_keys_are_found_by_hash,
            a_key_hash_is_unique_and_needs_an_existing_tenant,
            a_connector_round_trips_exactly,
            a_connector_without_oauth_client_warnings_or_makers_round_trips,
            inserting_a_connector_twice_is_a_conflict,
            update_connector_replaces_definition_warnings_and_oauth_client,
            connectors_are_invisible_to_other_tenants,
            a_connection_round_trips_exactly_with_byte_identical_secrets,
            every_status_round_trips,
            a_connection_needs_a_connector_of_its_own_tenant,
            inserting_a_connection_twice_is_a_conflict,
            update_connection_replaces_the_mutable_fields_only,
            delete_connection_removes_it_once,
            connections_are_invisible_to_other_tenants,
            connectors_page_by_id_across_three_pages,
            a_full_last_page_points_to_an_empty_one,
            connections_page_by_id_across_three_pages_within_a_connector,
            deleting_a_connector_in_use_is_refused_without_cascade,
            cascade_deletes_the_connector_with_its_connections_only,
            an_unused_connector_is_deleted_without_cascade,
            everything_survives_a_restart_and_migrations_run_once,
            undecodable_json_is_reported_as_corrupt_without_its_contents,
            concurrent_writers_wait_for_each_other_instead_of_failing,
            a_setting_is_written_once,
            tokens_are_written_apart_from_the_connection,
            a_sign_in_state_is_taken_once_and_not_after_it_expires,
            a_lease_has_one_holder_until_it_expires,
            the_first_data_key_is_made_once_and_a_rotation_retires_the_current_one,
            a_new_master_key_rewraps_every_data_key_and_the_check_at_once_or_not_at_all,
            sealed_values_not_under_a_key_are_listed_and_resealed_only_if_unchanged,
            conflicts_are_worded_alike_on_every_engine,
            a_page_limit_of_zero_returns_one_item,
            text_round_trips_byte_for_byte,
            a_whole_store_is_listed_for_a_move,
            imports_keep_ids_times_tokens_and_sealed_bytes,
            a_tenant_is_found_by_id,
            every_change_survives_its_payload_and_reaches_other_instances,
            an_api_key_round_trips_exactly,
            a_revoked_key_is_found_by_hash_with_its_revocation_time,
            a_key_is_revoked_once_and_only_by_its_tenant,
            api_keys_are_listed_by_id_without_revoked_ones_unless_asked,
            keys_and_connections_made_before_roles_read_as_the_tenants,
            connections_are_listed_by_owner_visibility_ids_and_connector,
            connections_visible_to_an_end_user_page_by_id,
            a_share_put_again_changes_its_permission_and_keeps_its_creation,
            shares_are_listed_by_end_user_within_their_tenant,
            a_share_is_deleted_once_and_only_by_its_tenant,
            a_share_needs_a_connection_of_its_own_tenant,
            deleting_a_connection_or_its_connector_deletes_its_shares,
            a_member_round_trips_and_an_address_is_unique_within_a_tenant,
            members_page_by_id_within_their_tenant,
            update_member_changes_the_role_only,
            a_member_is_deleted_once_and_only_by_its_tenant,
            a_connection_whose_session_cannot_be_claimed_is_not_made_and_writes_no_event,
            a_write_to_a_missing_connection_has_no_effects,
            each_write_writes_its_events_and_a_delete_removes_the_row,
            completing_a_session_sets_its_completion_once,
            a_cascade_writes_one_event_per_deleted_connection,
            an_event_goes_to_each_enabled_webhook_of_its_tenant_that_takes_its_kind,
            only_due_deliveries_are_claimed_and_a_claim_holds_until_it_runs_out,
            per_webhook_and_key_only_the_earliest_pending_delivery_is_claimable,
            a_claim_takes_no_more_than_its_limit_earliest_due_first,
            an_attempt_is_recorded_only_by_the_holder_of_its_claim,
            each_outcome_of_an_attempt_sets_the_delivery_and_releases_its_claim,
            the_delivery_queue_counts_pending_ones_with_the_oldest_event_and_the_next_due,
            a_webhook_round_trips_exactly,
            webhooks_page_by_id_within_their_tenant,
            update_webhook_changes_what_it_says,
            a_webhook_is_deleted_once_with_its_deliveries,
            deliveries_are_listed_newest_first_by_webhook_within_their_tenant,
            a_connect_session_round_trips_and_is_found_by_token_and_by_its_connection,
            a_connect_session_token_hash_and_id_are_unique,
        );
    };
    (@each $open:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(ctx) = $open.await else { return };
                behaviour::$name(&ctx).await;
                ctx.finish().await;
            }
        )*
    };
}
