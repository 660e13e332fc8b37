//! `portico migrate`, engine-neutral: from the store of a Portico of this run (its SQLite file,
//! or its PostgreSQL database with `PORTICO_TEST_DATABASE=postgres`) to a new SQLite file. The
//! move from SQLite to PostgreSQL with two instances afterwards is in tests/instances.rs.

mod common;

use std::path::Path;
use std::process::Output;

use common::pg::TEST_MASTER_KEY;
use common::{Api, Portico, fixture};
use serde_json::{Value, json};
use sqlx::Connection as _;

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

/// Runs statements on a SQLite store.
async fn sqlite_execute(url: &str, sql: &str) {
    let mut connection = sqlx::SqliteConnection::connect(url).await.expect("the SQLite store");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    connection.close().await.expect("closed");
}

/// The first column of `sql` on a SQLite store, as text.
async fn sqlite_strings(url: &str, sql: &str) -> Vec<String> {
    let mut connection = sqlx::SqliteConnection::connect(url).await.expect("the SQLite store");
    let values: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&mut connection).await.expect(sql);
    connection.close().await.expect("closed");
    values
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
    for (kind, expected) in
        [("settings", 1), ("tenants", 2), ("API keys", 2), ("connectors", 4), ("connections", 4), ("sign-ins", 0)]
    {
        assert_eq!(counts(&stdout, kind), [expected, expected, 0], "{kind}: {stdout}");
    }
    assert!(stdout.contains("every record is identical, and its 6 sealed values byte for byte"), "{stdout}");

    // An interrupted move: some of it is missing at the destination. A second run copies that,
    // and only that.
    let missing = sqlite_strings(&to, "SELECT id FROM connections ORDER BY id LIMIT 2").await;
    sqlite_execute(
        &to,
        &format!(
            "DELETE FROM connections WHERE id IN ('{}', '{}'); \
             DELETE FROM api_keys WHERE id = (SELECT MAX(id) FROM api_keys);",
            missing[0], missing[1]
        ),
    )
    .await;
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
    let changed = sqlite_strings(&to, "SELECT id FROM connections WHERE secrets IS NOT NULL ORDER BY id LIMIT 1").await;
    sqlite_execute(
        &to,
        &format!(
            "UPDATE connections SET secrets = X'0102' WHERE id = '{}'; \
             INSERT INTO tenants (id, name, created_at) VALUES ('zz-extra', 'extra', 1);",
            changed[0]
        ),
    )
    .await;
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
    assert_eq!(sqlite_strings(&to, "SELECT name FROM tenants").await, ["default"], "nothing moved");

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
    assert_eq!(sqlite_strings(&to, "SELECT CAST(COUNT(*) AS TEXT) FROM connections").await, ["0"]);

    // No source, or the same store twice.
    let nowhere = format!("sqlite://{}", dirs.path().join("nowhere/portico.db").display());
    let (_, stderr) = texts(&migrate(&nowhere, &to));
    assert!(stderr.contains("there is no SQLite database at"), "{stderr}");
    assert!(!dirs.path().join("nowhere").exists(), "nothing was created");
    let (_, stderr) = texts(&migrate(&from, &from));
    assert!(stderr.contains("--from and --to name the same store"), "{stderr}");
}
