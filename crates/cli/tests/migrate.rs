//! `portico migrate`, engine-neutral: from the store of a Portico of this run (its SQLite file,
//! or its PostgreSQL database with `PORTICO_TEST_DATABASE=postgres`) to a new SQLite file; and
//! the access model (keys of every role, members, owned and shared connections), webhooks,
//! connect sessions and the outbox from a SQLite store to PostgreSQL, record by record. The move from SQLite to PostgreSQL with two instances
//! afterwards is in tests/instances.rs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use common::pg::{TEST_MASTER_KEY, TestDatabase};
use common::{Api, Portico, fixture, random};
use portico_model::{Role, SharePermission};
use portico_store::{
    ApiKeyRecord, Attempt, AttemptNext, ConnectSessionRecord, ConnectionQuery, ConnectionRecord, ConnectionStatus,
    ConnectorRecord, DeliveryRecord, DeliveryState, Effects, EventRecord, MemberRecord, OAuthStateRecord, SealedBytes,
    ShareRecord, SqliteStore, Store, StoredApiKey, StoredConnectSession, Tenant, WebhookRecord, new_id, now_millis,
};
use portico_testkit::database::Database;
use serde_json::{Value, json};

/// Another master key (base64 of 32 bytes).
const OTHER_MASTER_KEY: &str = "b3RoZXItdGVzdC1tYXN0ZXIta2V5LW9mLTMyLWJ5dGU=";

fn migrate(from: &str, to: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["migrate", "--from", from, "--to", to])
        .env_clear()
        .envs(std::env::vars().filter(|(name, _)| !name.starts_with("PORTICO_")))
        .output()
        .expect("portico migrate runs")
}

fn texts(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// `portico migrate` that succeeds: its standard output.
#[track_caller]
fn migrated(from: &str, to: &str) -> String {
    let output = migrate(from, to);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Checked: both stores hold"), "{stdout}");
    stdout
}

/// The counts of a kind in `portico migrate`'s table: at the source, copied, already there.
fn counts(stdout: &str, kind: &str) -> [u64; 3] {
    let line = stdout
        .lines()
        .find(|line| line.trim_start().starts_with(kind))
        .unwrap_or_else(|| panic!("a line about {kind}: {stdout}"));
    let numbers: Vec<u64> =
        line[line.find(kind).unwrap() + kind.len()..].split_whitespace().map_while(|word| word.parse().ok()).collect();
    numbers.try_into().unwrap_or_else(|numbers| panic!("three counts for {kind}, not {numbers:?}: {line}"))
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// Everything a user of one tenant can read back.
async fn snapshot(api: &Api) -> Vec<Value> {
    let mut views = Vec::new();
    for list in ["/v1/connectors", "/v1/connections"] {
        for item in api.all_pages(list, 100).await.into_iter().flatten() {
            views.push(api.get(&format!("{list}/{}", id(&item))).await.expect_json(200));
        }
    }
    views
}

/// A Portico of this run's engine with [`TEST_MASTER_KEY`], two tenants, connectors and
/// connections; stopped. Its key and the other tenant's, and what each tenant read back.
async fn populated(data_dir: &Path) -> (Portico, [String; 2], (Vec<Value>, Vec<Value>)) {
    let mut portico = Portico::launch(data_dir, &[], &[("PORTICO_MASTER_KEY", TEST_MASTER_KEY)]);
    let api = portico.api();
    let metrics = api.create_connector(&fixture::definition("metrics.json")).await;
    let basic = api.create_connector(&fixture::power_platform("basic-auth")).await;
    let mut weather = fixture::power_platform("api-key-query");
    weather["oauthClient"] = json!({"clientId": "weather-app", "clientSecret": "weather-client-secret"});
    api.create_connector(&weather).await;
    for (region, key) in [("eu", "eu-key"), ("us", "us-key")] {
        api.create_connection(&json!({"connectorId": metrics["id"],
            "parameters": {"api_key": key, "region": region, "timeout": 10}}))
            .await;
    }
    api.create_connection(&json!({"connectorId": basic["id"],
        "parameters": {"username": "agent", "password": "basic-password"}}))
        .await;
    let other_key = portico.tenant_key("create", "other");
    let other = portico.client(Some(&other_key));
    let theirs = other.create_connector(&fixture::definition("metrics.json")).await;
    other
        .create_connection(&json!({"connectorId": theirs["id"],
            "parameters": {"api_key": "their-key", "region": "eu", "timeout": 5}}))
        .await;
    let views = (snapshot(&api).await, snapshot(&other).await);
    let admin_key = portico.admin_key.clone();
    assert!(portico.stop().success());
    (portico, [admin_key, other_key], views)
}

#[tokio::test]
async fn a_move_is_checked_and_a_second_run_completes_an_interrupted_one() {
    let dirs = tempfile::tempdir().unwrap();
    let (source, [admin_key, other_key], before) = populated(&dirs.path().join("source")).await;
    let from = source.store_url();
    std::fs::create_dir(dirs.path().join("moved")).unwrap();
    let to = format!("sqlite://{}", dirs.path().join("moved/portico.db").display());

    let stdout = migrated(&from, &to);
    for (kind, expected) in [
        ("settings", 1),
        ("data keys", 1),
        ("tenants", 2),
        ("API keys", 2),
        ("connectors", 4),
        ("connections", 4),
        ("sign-ins", 0),
    ] {
        assert_eq!(counts(&stdout, kind), [expected, expected, 0], "{kind}: {stdout}");
    }
    assert!(stdout.contains("every record is identical, and its 7 sealed values byte for byte"), "{stdout}");

    // An interrupted move: some of it is missing at the destination. A second run copies that,
    // and only that.
    let moved_store = Database::at(&to);
    let missing = moved_store.strings("SELECT id FROM connections ORDER BY id LIMIT 2");
    moved_store.execute(
        &format!(
            "DELETE FROM connections WHERE id IN ('{}', '{}'); \
             DELETE FROM api_keys WHERE id = (SELECT MAX(id) FROM api_keys);",
            missing[0], missing[1]
        ),
        &[],
    );
    let stdout = migrated(&from, &to);
    assert_eq!(counts(&stdout, "connections"), [4, 2, 2], "{stdout}");
    assert_eq!(counts(&stdout, "API keys"), [2, 1, 1], "{stdout}");
    assert_eq!(counts(&stdout, "connectors"), [4, 0, 4], "{stdout}");
    let stdout = migrated(&from, &to);
    assert_eq!(counts(&stdout, "connections"), [4, 0, 4], "nothing left to copy: {stdout}");

    // A Portico on the destination, same master key: everything reads back the same, and the
    // secrets open (a change re-seals them).
    let moved_dir = dirs.path().join("moved");
    let moved = Portico::launch(&moved_dir, &["--database", &to], &[("PORTICO_MASTER_KEY", TEST_MASTER_KEY)]);
    assert!(moved.admin_key.is_empty(), "no new tenant: the tenants moved");
    let (api, other) = (moved.client(Some(&admin_key)), moved.client(Some(&other_key)));
    assert_eq!((snapshot(&api).await, snapshot(&other).await), before);
    let connection = id(&api.get("/v1/connections").await.expect_json(200)["items"][0]);
    let changed =
        api.patch(&format!("/v1/connections/{connection}"), &json!({"displayName": "moved"})).await.expect_json(200);
    assert_eq!(changed["displayName"], "moved");
    drop(moved);

    // The check finds what differs: a sealed value changed at the destination, a record there only.
    let changed = moved_store.strings("SELECT id FROM connections WHERE secrets IS NOT NULL ORDER BY id LIMIT 1");
    moved_store.execute(
        &format!(
            "UPDATE connections SET secrets = X'0102' WHERE id = '{}'; \
             INSERT INTO tenants (id, name, created_at) VALUES ('zz-extra', 'extra', 1);",
            changed[0]
        ),
        &[],
    );
    let output = migrate(&from, &to);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("the sealed secrets of connection {} differs", changed[0])), "{stderr}");
    assert!(stderr.contains("tenants: zz-extra is at the destination only"), "{stderr}");
    assert!(stderr.contains("does not match the source"), "{stderr}");
    assert!(!stdout.contains("Checked:"), "{stdout}");
}

#[tokio::test]
async fn a_destination_in_use_or_sealed_with_another_key_is_refused_before_anything_moves() {
    let dirs = tempfile::tempdir().unwrap();
    let (source, ..) = populated(&dirs.path().join("source")).await;
    let from = source.store_url();

    // A destination that a Portico with another master key has used.
    let other_dir = dirs.path().join("other");
    let to = format!("sqlite://{}", other_dir.join("portico.db").display());
    let mut other = Portico::launch(&other_dir, &["--database", &to], &[("PORTICO_MASTER_KEY", OTHER_MASTER_KEY)]);
    assert!(other.stop().success());
    let output = migrate(&from, &to);
    let (stdout, stderr) = texts(&output);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stderr.contains("master_key_check differs") && stderr.contains("sealed with another master key"),
        "{stderr}"
    );
    assert_eq!(Database::at(&to).strings("SELECT name FROM tenants"), ["default"], "nothing moved");

    // One that a Portico with the same key has used: it made a `default` tenant of its own
    // (and a master-key check of its own).
    let used_dir = dirs.path().join("used");
    let to = format!("sqlite://{}", used_dir.join("portico.db").display());
    let mut used = Portico::launch(&used_dir, &["--database", &to], &[("PORTICO_MASTER_KEY", TEST_MASTER_KEY)]);
    assert!(used.stop().success());
    let output = migrate(&from, &to);
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("a Portico has used the destination already"), "{stderr}");
    assert_eq!(Database::at(&to).strings("SELECT CAST(COUNT(*) AS TEXT) FROM connections"), ["0"]);

    // No source, or the same store twice.
    let nowhere = format!("sqlite://{}", dirs.path().join("nowhere/portico.db").display());
    let (_, stderr) = texts(&migrate(&nowhere, &to));
    assert!(stderr.contains("there is no SQLite database at"), "{stderr}");
    assert!(!dirs.path().join("nowhere").exists(), "nothing was created");
    let (_, stderr) = texts(&migrate(&from, &from));
    assert!(stderr.contains("--from and --to name the same store"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// The access model, webhooks, connect sessions and the outbox, from SQLite to PostgreSQL.

/// What a tenant holds, each kind in the order the store lists it.
#[derive(Debug, PartialEq)]
struct Holdings {
    keys: Vec<StoredApiKey>,
    members: Vec<MemberRecord>,
    connectors: Vec<ConnectorRecord>,
    connections: Vec<ConnectionRecord>,
    shares: Vec<ShareRecord>,
    webhooks: Vec<WebhookRecord>,
    sessions: Vec<StoredConnectSession>,
    events: Vec<EventRecord>,
    deliveries: Vec<DeliveryRecord>,
}

impl Holdings {
    /// What `store` holds of `tenant`.
    async fn read(store: &dyn Store, tenant: &str) -> Holdings {
        const ALL: u32 = 1_000;
        Holdings {
            keys: store.export_api_keys(tenant).await.unwrap(),
            members: store.list_members(tenant, None, ALL).await.unwrap().items,
            connectors: store.list_connectors(tenant, None, ALL).await.unwrap().items,
            connections: store.list_connections(tenant, &ConnectionQuery::default(), None, ALL).await.unwrap().items,
            shares: store.export_shares(tenant).await.unwrap(),
            webhooks: store.list_webhooks(tenant, None, ALL).await.unwrap().items,
            sessions: store.export_connect_sessions(tenant).await.unwrap(),
            events: store.export_events(tenant).await.unwrap(),
            deliveries: store.export_deliveries(tenant).await.unwrap(),
        }
    }

    /// How many records of each kind, named as `portico migrate` names them.
    fn counts(&self) -> [(&'static str, usize); 9] {
        [
            ("API keys", self.keys.len()),
            ("members", self.members.len()),
            ("connectors", self.connectors.len()),
            ("connections", self.connections.len()),
            ("shares", self.shares.len()),
            ("webhooks", self.webhooks.len()),
            ("connect sessions", self.sessions.len()),
            ("events", self.events.len()),
            ("deliveries", self.deliveries.len()),
        ]
    }
}

/// Hex digits that appear nowhere else: a key hash, a sign-in state hash.
fn hex_hash() -> String {
    format!("{:016x}{:016x}{:016x}{:016x}", random(), random(), random(), random())
}

/// A tenant `name` written into `store` as Portico's use cases would: a connector; webhooks
/// (one for every event, one disabled for deletions only); connections of alice (made through a
/// connect session), of bob and of the tenant, each last changed by someone else, each with the
/// event of its creation, delivered to the first webhook: alice's delivered, bob's to be retried,
/// the tenant's being attempted (claimed); a connect session of dave's still pending; alice's
/// connection shared with bob and carol, the tenant's with alice; keys of every role (an admin
/// key, an author's that expires, alice's, one of hers narrowed to two connections, bob's
/// revoked), a member of each role, and a sign-in of alice's in progress. What it wrote, in
/// listing order.
async fn write_tenant(store: &dyn Store, name: &str) -> (Tenant, Holdings) {
    let tenant = store.create_tenant(name).await.unwrap();
    let now = now_millis();
    let by_member = || Some(format!("member:{}", new_id()));
    let by_key = || Some(format!("key:{}", new_id()));

    let every_event = WebhookRecord {
        id: new_id(),
        tenant_id: tenant.id.clone(),
        url: format!("https://{name}.example/portico-events"),
        events: None,
        enabled: true,
        secrets: SealedBytes(hex_hash().into_bytes()),
        created_by: by_key().unwrap(),
        created_at: now,
        updated_at: now + 1,
    };
    let deletions = WebhookRecord {
        id: new_id(),
        url: format!("https://{name}.example/deletions"),
        events: Some(vec!["connection.deleted".to_owned()]),
        enabled: false,
        secrets: SealedBytes(hex_hash().into_bytes()),
        ..every_event.clone()
    };
    let webhooks = vec![every_event.clone(), deletions];
    for webhook in &webhooks {
        store.insert_webhook(webhook).await.unwrap();
    }
    let session = |end_user: &str, n: i64| StoredConnectSession {
        record: ConnectSessionRecord {
            id: new_id(),
            tenant_id: tenant.id.clone(),
            end_user_id: end_user.to_owned(),
            app_name: Some(format!("{name} app")),
            connector_ids: None,
            return_url: Some(format!("https://{name}.example/connected")),
            created_by: by_key().unwrap(),
            created_at: now,
            expires_at: now + 600_000 + n,
            connection_id: None,
            completed_at: None,
        },
        token_hash: hex_hash(),
    };
    let alices_session = session("alice", 0);
    store.insert_connect_session(&alices_session.record, &alices_session.token_hash).await.unwrap();

    let connector = ConnectorRecord {
        id: new_id(),
        tenant_id: tenant.id.clone(),
        connector: serde_json::from_value(fixture::json("definitions/metrics.json")).expect("a connector"),
        warnings: Vec::new(),
        oauth_client_id: Some("metrics-app".to_owned()),
        oauth_client_secret: Some(SealedBytes(hex_hash().into_bytes())),
        created_by: by_key(),
        updated_by: by_member(),
        created_at: now,
        updated_at: now,
    };
    store.insert_connector(&connector).await.unwrap();

    let mut connections = Vec::new();
    for (owner, updated_by) in [(Some("alice"), by_member()), (Some("bob"), by_key()), (None, Some("operator".into()))]
    {
        let record = ConnectionRecord {
            id: new_id(),
            tenant_id: tenant.id.clone(),
            connector_id: connector.id.clone(),
            end_user_id: owner.map(str::to_owned),
            created_by: by_key().unwrap(),
            updated_by,
            display_name: format!("{} in {name}", owner.unwrap_or("the tenant")),
            parameter_set: None,
            status: ConnectionStatus::Connected,
            status_reason: None,
            parameters: BTreeMap::from([("region".to_owned(), json!("eu"))]),
            secrets: Some(SealedBytes(hex_hash().into_bytes())),
            tokens: None,
            token_expires_at: None,
            created_at: now,
            updated_at: now + 1,
        };
        connections.push(record);
    }
    let mut events = Vec::new();
    for (n, record) in connections.iter().enumerate() {
        let created = EventRecord {
            id: format!("evt_{}", new_id()),
            tenant_id: tenant.id.clone(),
            kind: "connection.created".to_owned(),
            payload: json!({"type": "connection.created", "data": {"connectionId": record.id}}).to_string(),
            ordering_key: record.id.clone(),
            created_at: now + n as i64,
        };
        // Alice's is made through her connect session, which it completes.
        let made_by_session = (n == 0).then_some((alices_session.record.id.as_str(), now));
        let effects = Effects {
            events: std::slice::from_ref(&created),
            claim_session: made_by_session,
            complete_session: made_by_session,
        };
        store.insert_connection_with(record, effects).await.unwrap();
        events.push(created);
    }
    let (alices, tenants) = (&connections[0], &connections[2]);
    let alices_session = StoredConnectSession {
        record: ConnectSessionRecord {
            connection_id: Some(alices.id.clone()),
            completed_at: Some(now),
            ..alices_session.record
        },
        ..alices_session
    };
    let daves_session = session("dave", 1);
    store.insert_connect_session(&daves_session.record, &daves_session.token_hash).await.unwrap();

    // The first attempts: one delivered, one to be retried, one still going on.
    let holder = format!("sender-{name}");
    let claimed = store.claim_deliveries(&holder, now + 2, now + 600_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let delivery = |event: &EventRecord| DeliveryRecord {
        id: format!("{}:{}", event.id, every_event.id),
        tenant_id: tenant.id.clone(),
        webhook_id: every_event.id.clone(),
        event_id: event.id.clone(),
        event_kind: event.kind.clone(),
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: event.created_at,
        last_status: None,
        last_error: None,
        last_attempt_at: None,
        created_at: event.created_at,
    };
    let ok = Attempt { at: now + 3, status: Some(204), error: None, next: AttemptNext::Delivered };
    let busy = Attempt {
        at: now + 3,
        status: Some(503),
        error: Some("busy".into()),
        next: AttemptNext::RetryAt(now + 60_000),
    };
    let deliveries = vec![
        DeliveryRecord {
            state: DeliveryState::Delivered,
            attempts: 1,
            next_attempt_at: now + 3,
            last_status: Some(204),
            last_attempt_at: Some(now + 3),
            ..delivery(&events[0])
        },
        DeliveryRecord {
            attempts: 1,
            next_attempt_at: now + 60_000,
            last_status: Some(503),
            last_error: Some("busy".into()),
            last_attempt_at: Some(now + 3),
            ..delivery(&events[1])
        },
        delivery(&events[2]),
    ];
    for (delivery, attempt) in deliveries.iter().zip([ok, busy]) {
        assert!(store.record_attempt(&delivery.id, &holder, &attempt).await.unwrap());
    }

    let mut shares = Vec::new();
    for (connection, end_user, permission) in [
        (alices, "bob", SharePermission::Edit),
        (alices, "carol", SharePermission::Use),
        (tenants, "alice", SharePermission::Use),
    ] {
        let share = ShareRecord {
            tenant_id: tenant.id.clone(),
            connection_id: connection.id.clone(),
            end_user_id: end_user.to_owned(),
            permission,
            created_by: by_member().unwrap(),
            created_at: now,
            updated_at: now + 2,
        };
        store.put_share(&share).await.unwrap();
        shares.push(share);
    }
    shares.sort_by(|a, b| (&a.connection_id, &a.end_user_id).cmp(&(&b.connection_id, &b.end_user_id)));

    let admin = ApiKeyRecord {
        id: new_id(),
        tenant_id: tenant.id.clone(),
        name: "admin".to_owned(),
        role: Role::Admin,
        end_user_id: None,
        connection_ids: None,
        expires_at: None,
        created_by: Some("operator".to_owned()),
        created_at: now,
        revoked_at: None,
        rate_limit: None,
    };
    let alice = Some("alice".to_owned());
    let mut keys = Vec::new();
    for record in [
        ApiKeyRecord {
            name: "docs build".to_owned(),
            role: Role::Author,
            expires_at: Some(now + 86_400_000),
            created_by: by_member(),
            ..admin.clone()
        },
        ApiKeyRecord {
            name: "alice's phone".to_owned(),
            role: Role::User,
            end_user_id: alice.clone(),
            created_by: by_key(),
            rate_limit: Some(12),
            ..admin.clone()
        },
        ApiKeyRecord {
            name: "alice's report".to_owned(),
            role: Role::User,
            end_user_id: alice,
            // Not in id order: the scope moves as it is.
            connection_ids: Some(vec![tenants.id.clone(), alices.id.clone()]),
            ..admin.clone()
        },
        ApiKeyRecord {
            name: "bob's old laptop".to_owned(),
            role: Role::User,
            end_user_id: Some("bob".to_owned()),
            revoked_at: Some(now + 3),
            ..admin.clone()
        },
        admin,
    ] {
        let key = StoredApiKey { record: ApiKeyRecord { id: new_id(), ..record }, key_hash: hex_hash() };
        store.insert_api_key(&key.record, &key.key_hash).await.unwrap();
        keys.push(key);
    }

    let mut members = Vec::new();
    for (who, role) in [("ada", Role::Admin), ("grace", Role::Author), ("alice", Role::User)] {
        let member = MemberRecord {
            id: new_id(),
            tenant_id: tenant.id.clone(),
            email: format!("{who}@{name}.test"),
            role,
            created_by: by_member(),
            created_at: now,
            updated_at: now + 4,
        };
        store.insert_member(&member).await.unwrap();
        members.push(member);
    }

    let sign_in = OAuthStateRecord {
        state_hash: hex_hash(),
        tenant_id: tenant.id.clone(),
        connection_id: alices.id.clone(),
        verifier: SealedBytes(hex_hash().into_bytes()),
        redirect_uri: "https://portico.example/oauth/callback".to_owned(),
        return_url: None,
        sealed_return_url: Some(SealedBytes(hex_hash().into_bytes())),
        started_by: by_member(),
        created_at: now,
        expires_at: now + 600_000,
    };
    store.insert_oauth_state(&sign_in).await.unwrap();

    let holdings = Holdings {
        keys,
        members,
        connectors: vec![connector],
        connections,
        shares,
        webhooks,
        sessions: vec![alices_session, daves_session],
        events,
        deliveries,
    };
    (tenant, holdings)
}

/// Every tenant of `written` is at the destination holding exactly what was written, each key
/// is found by its hash as a caller's key is, and each connect session by its token's hash as
/// the link that was handed out finds it.
async fn assert_holds(destination: &dyn Store, written: &[(Tenant, Holdings)]) {
    for (tenant, holdings) in written {
        assert_eq!(destination.tenant(&tenant.id).await.unwrap().as_ref(), Some(tenant));
        assert_eq!(&Holdings::read(destination, &tenant.id).await, holdings, "{}", tenant.name);
        for key in &holdings.keys {
            assert_eq!(destination.api_key_by_hash(&key.key_hash).await.unwrap().as_ref(), Some(&key.record));
        }
        for session in &holdings.sessions {
            let found = destination.connect_session_by_token(&session.token_hash).await.unwrap();
            assert_eq!(found.as_ref(), Some(&session.record));
        }
    }
}

#[tokio::test]
async fn keys_members_owners_shares_webhooks_sessions_and_deliveries_move_exactly_from_sqlite_to_postgresql() {
    let Some(database) = TestDatabase::try_create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let from = format!("sqlite://{}?mode=rwc", dir.path().join("portico.db").display());
    let source = SqliteStore::open(&from).await.unwrap();
    let mut written = Vec::new();
    for name in ["acme", "globex"] {
        written.push(write_tenant(&source, name).await);
    }
    let sign_ins = source.list_oauth_states().await.unwrap();
    source.close().await;

    let stdout = migrated(&from, &database.url);
    // Every record of each kind is copied.
    let total = |kind: &str| -> u64 {
        let of_kind = written.iter().flat_map(|(_, holdings)| holdings.counts()).filter(|(name, _)| *name == kind);
        of_kind.map(|(_, count)| count as u64).sum()
    };
    for (kind, _) in written[0].1.counts() {
        let expected = total(kind);
        assert_eq!(counts(&stdout, kind), [expected, expected, 0], "{kind}: {stdout}");
    }
    // One tenant, and one sign-in in progress, each.
    let tenants = written.len() as u64;
    for kind in ["tenants", "sign-ins"] {
        assert_eq!(counts(&stdout, kind), [tenants, tenants, 0], "{kind}: {stdout}");
    }
    let pending: usize = written
        .iter()
        .flat_map(|(_, holdings)| &holdings.deliveries)
        .filter(|d| d.state == DeliveryState::Pending)
        .count();
    assert!(stdout.contains(&format!("({pending} pending)")), "{stdout}");
    let destination = portico_store::open(&database.url).await.unwrap();
    assert_holds(destination.as_ref(), &written).await;
    assert_eq!(destination.list_oauth_states().await.unwrap(), sign_ins);

    // Pending deliveries are the destination's to attempt: the claims of the source (one of each
    // tenant still held) did not move, and the one to be retried waits for its time.
    let now = now_millis();
    let claimed = destination.claim_deliveries("instance-1", now, now + 10_000, 100).await.unwrap();
    let mut claimed: Vec<DeliveryRecord> = claimed.into_iter().map(|job| job.delivery).collect();
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    let mut being_attempted: Vec<DeliveryRecord> =
        written.iter().map(|(_, holdings)| holdings.deliveries[2].clone()).collect();
    being_attempted.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(claimed, being_attempted);

    // An interrupted move: a shared connection (its shares went with it), a member, the pending
    // connect session and a delivery are missing at the destination. A second run copies them,
    // and only them.
    let acme = &written[0].1;
    let shared = &acme.shares[0].connection_id;
    let its_shares = acme.shares.iter().filter(|share| share.connection_id == *shared).count() as u64;
    Database::at(&database.url).execute(
        &format!(
            "DELETE FROM connections WHERE id = '{shared}'; DELETE FROM members WHERE id = '{}'; \
             DELETE FROM connect_sessions WHERE id = '{}'; DELETE FROM webhook_deliveries WHERE id = '{}'",
            acme.members[1].id, acme.sessions[1].record.id, acme.deliveries[1].id
        ),
        &[],
    );
    let stdout = migrated(&from, &database.url);
    let (connections, shares, members) = (total("connections"), total("shares"), total("members"));
    assert_eq!(counts(&stdout, "connections"), [connections, 1, connections - 1], "{stdout}");
    assert_eq!(counts(&stdout, "shares"), [shares, its_shares, shares - its_shares], "{stdout}");
    assert_eq!(counts(&stdout, "members"), [members, 1, members - 1], "{stdout}");
    for kind in ["connect sessions", "deliveries"] {
        let expected = total(kind);
        assert_eq!(counts(&stdout, kind), [expected, 1, expected - 1], "{kind}: {stdout}");
    }
    let (webhooks, events) = (total("webhooks"), total("events"));
    assert_eq!(counts(&stdout, "webhooks"), [webhooks, 0, webhooks], "{stdout}");
    assert_eq!(counts(&stdout, "events"), [events, 0, events], "{stdout}");
    assert_holds(destination.as_ref(), &written).await;

    // The check covers them: a webhook's sealed secrets and a delivery's state changed at the
    // destination are differences.
    let (webhook, delivery) = (&acme.webhooks[0].id, &acme.deliveries[0].id);
    Database::at(&database.url).execute(
        &format!(
            "UPDATE webhooks SET secrets = '\\x0102' WHERE id = '{webhook}'; \
             UPDATE webhook_deliveries SET state = 'failed' WHERE id = '{delivery}'"
        ),
        &[],
    );
    let output = migrate(&from, &database.url);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("the sealed secrets of webhook {webhook} differs")), "{stderr}");
    assert!(stderr.contains(&format!("delivery {delivery} differs")), "{stderr}");
}

#[tokio::test]
async fn an_empty_store_moves_and_every_kind_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let from = format!("sqlite://{}", dir.path().join("from.db").display());
    let to = format!("sqlite://{}", dir.path().join("to.db").display());
    // An empty store, with its schema and nothing else.
    portico_store::open(&format!("{from}?mode=rwc")).await.unwrap();
    let stdout = migrated(&from, &to);
    for kind in [
        "settings",
        "data keys",
        "tenants",
        "API keys",
        "members",
        "connectors",
        "connections",
        "shares",
        "webhooks",
        "connect sessions",
        "events",
        "deliveries",
        "sign-ins",
    ] {
        assert_eq!(counts(&stdout, kind), [0, 0, 0], "{kind}: {stdout}");
    }
}
