//! `portico keys rotate|status`: the data key is rotated while Portico serves.
//!
//! - SQLite: connections, a connector's OAuth client secret, a webhook and a value sealed by the
//!   master key itself (as before data keys existed) are all re-sealed by the new key; a
//!   rotation stopped after two batches is finished by the next run (no third key made); a
//!   second rotation works; every connection still applies its credential, also after a restart
//!   that reads every value from the file.
//! - The master key (SQLite): refused while a value is sealed by the master key itself, until a
//!   data-key rotation re-seals it; then the data keys are re-wrapped under a new master key
//!   while an instance started with the old one keeps serving calls and reads (and keeps its
//!   keys after it reads them again, saying why it cannot follow); a restart with the new key
//!   serves every connection, one with the old key is refused naming both key ids.
//! - PostgreSQL: two instances serve calls and reads without one failure while a rotation
//!   re-seals 2,000 connections in small batches; connections made on either instance meanwhile
//!   are readable by both afterwards, and every value names the new key. Without a server the
//!   test prints `SKIPPED: …` and passes, except under `CI=true`.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::backend::Backend;
use common::pg::{TEST_MASTER_KEY, TestDatabase};
use common::{Api, Portico, fixture};
use portico_secrets::{MasterKey, header_of};
use portico_store::{SealedBytes, SealedColumn, Store};
use serde_json::{Value, json};

/// `portico keys <args>` on a store, with `env`; no other `PORTICO_*` variable.
fn keys(args: &[&str], store: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("keys")
        .args(args)
        .args(store)
        .env_clear()
        .envs(std::env::vars().filter(|(name, _)| !name.starts_with("PORTICO_")))
        .envs(env.iter().copied())
        .output()
        .expect("portico keys runs")
}

fn printed(output: &Output, what: &str) -> Value {
    assert!(
        output.status.success(),
        "portico keys {what}: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("JSON from keys {what}"))
}

/// `(id, state, values)` of each key `keys status` lists.
fn status(store: &[&str], env: &[(&str, &str)]) -> Vec<(String, String, u64)> {
    let printed = printed(&keys(&["status"], store, env), "status");
    printed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| {
            (
                key["id"].as_str().unwrap().to_owned(),
                key["state"].as_str().unwrap().to_owned(),
                key["values"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn calls_connector(backend: &Backend) -> Value {
    let mut definition = fixture::json("calls/api-key-header.json");
    definition["backend"]["host"] = json!(backend.authority());
    json!({"definition": definition})
}

/// Every sealed value of the store not sealed by `key`, by column.
async fn not_sealed_by(store: &dyn Store, key: &str) -> Vec<(SealedColumn, String)> {
    let mut found = Vec::new();
    for column in SealedColumn::ALL {
        for value in store.list_sealed(column, &header_of(key), "", 10_000).await.unwrap() {
            found.push((column, value.row));
        }
    }
    found
}

/// Calls `/ok` through `connection`: the backend must see `expected` as its key.
async fn call_applies(api: &Api, backend: &Backend, connection: &str, expected: &str) {
    let reply = api.get(&format!("/v1/connections/{connection}/proxy/ok")).await;
    assert_eq!(reply.status, 200, "{connection}: {}", reply.text);
    let seen = backend.take().into_iter().filter_map(|r| r.header("x-api-key").map(str::to_owned)).collect::<Vec<_>>();
    assert_eq!(seen, [expected.to_owned()], "{connection}");
}

#[tokio::test]
async fn a_rotation_reseals_every_value_resumes_after_an_interruption_and_runs_again() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut portico = Portico::launch(&data_dir, &["--allow-private-backends"], &[]);
    let api = portico.api();
    let connector = api.create_connector(&calls_connector(&backend)).await;
    let mut oauth_body = fixture::power_platform("api-key-query");
    oauth_body["oauthClient"] = json!({"clientId": "weather-app", "clientSecret": "client-secret-of-the-test"});
    api.create_connector(&oauth_body).await;
    let webhook = api.post("/v1/webhooks", &json!({"url": "http://127.0.0.1:9/hook"})).await.expect_json(201);
    let mut connections = Vec::new();
    for n in 0..30 {
        let key = format!("key-{n}");
        let created =
            api.create_connection(&json!({"connectorId": connector["id"], "parameters": {"api_key": key}})).await;
        connections.push((common::id(&created), key));
    }

    // One value as stores made before data keys hold it: sealed by the master key itself.
    let url = format!("sqlite://{}", data_dir.join("portico.db").display());
    let store = portico_store::open(&url).await.unwrap();
    let master = MasterKey::from_base64(&std::fs::read_to_string(data_dir.join("master.key")).unwrap()).unwrap();
    let tenant = store.tenant_by_name("default").await.unwrap().unwrap().id;
    let (legacy_id, legacy_key) = &connections[0];
    let mut legacy = store.connection(&tenant, legacy_id).await.unwrap().unwrap();
    let plaintext = serde_json::to_vec(&json!({"api_key": legacy_key})).unwrap();
    legacy.secrets = Some(SealedBytes(master.seal(&plaintext, legacy_id.as_bytes())));
    store.update_connection(&legacy).await.unwrap();

    let dir_args = ["--data-dir", data_dir.to_str().unwrap()];
    let before = status(&dir_args, &[]);
    let first_key = before[0].0.clone();
    // 30 connections, 1 client secret, 1 webhook; one connection's secret under the master key.
    assert_eq!(before, [(first_key.clone(), "current".into(), 31), (master.id().into(), "master".into(), 1)]);

    // Stopped after two batches of 7: the new key is current, the old one retiring.
    let stopped =
        keys(&["rotate", "--batch-size", "7", "--grace-seconds", "0", "--stop-after-batches", "2"], &dir_args, &[]);
    assert!(!stopped.status.success());
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("stopped after 2 batch(es)"), "{stopped:?}");
    let midway = status(&dir_args, &[]);
    let second_key = midway[0].0.clone();
    assert_ne!(second_key, first_key);
    assert_eq!(midway[0].1, "current");
    assert_eq!(midway[1].0, first_key);
    assert_eq!(midway[1].1, "retiring");
    assert_eq!(midway[0].2, 14);
    assert_eq!(midway[0].2 + midway[1].2 + midway[2].2, 32);
    // Instances keep working midway: a connection made now is sealed and read back.
    let midway_connection =
        api.create_connection(&json!({"connectorId": connector["id"], "parameters": {"api_key": "made-midway"}})).await;
    connections.push((common::id(&midway_connection), "made-midway".to_owned()));

    // Run again: it finishes that rotation (no third key), waiting for the instance to poll.
    let finished = printed(&keys(&["rotate", "--batch-size", "7", "--grace-seconds", "6"], &dir_args, &[]), "rotate");
    assert_eq!(finished["resumed"], true);
    assert_eq!(finished["current"], second_key.as_str());
    assert_eq!(finished["retired"], json!([first_key]));
    assert_eq!(
        status(&dir_args, &[]),
        [(second_key.clone(), "current".into(), 33), (master.id().into(), "master".into(), 0)]
    );
    assert_eq!(not_sealed_by(store.as_ref(), &second_key).await, []);
    for (connection, key) in &connections {
        call_applies(&api, &backend, connection, key).await;
    }

    // Again, uninterrupted, while the server serves.
    let again = printed(&keys(&["rotate", "--grace-seconds", "6"], &dir_args, &[]), "rotate");
    let third_key = again["current"].as_str().unwrap().to_owned();
    assert_eq!(again["resumed"], false);
    assert_eq!(again["retired"], json!([second_key]));
    let made_after =
        api.create_connection(&json!({"connectorId": connector["id"], "parameters": {"api_key": "made-after"}})).await;
    connections.push((common::id(&made_after), "made-after".to_owned()));
    assert_eq!(
        status(&dir_args, &[]),
        [(third_key.clone(), "current".into(), 34), (master.id().into(), "master".into(), 0)]
    );
    assert_eq!(not_sealed_by(store.as_ref(), &third_key).await, []);
    let rotated = api.post(&format!("/v1/webhooks/{}/rotate-secret", common::id(&webhook)), &json!({})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);

    // A restart reads every value from the file, with the keys from the store.
    assert!(portico.stop().success());
    let restarted = Portico::launch(&data_dir, &["--allow-private-backends"], &[]);
    let api = restarted.api();
    for (connection, key) in &connections {
        call_applies(&api, &backend, connection, key).await;
    }
    for output in [restarted.output_bytes(), stopped.stderr.clone()] {
        assert!(!common::contains(&output, "key-1"), "a secret in the output");
    }
}

/// An instance on `database_url`.
fn instance(database_url: &str, data_dir: &Path) -> Portico {
    Portico::launch(
        data_dir,
        &["--allow-private-backends", "--database", database_url],
        &[("PORTICO_MASTER_KEY", TEST_MASTER_KEY)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_serve_without_a_failure_while_the_data_key_rotates() {
    let Some(database) = TestDatabase::try_create() else { return };
    let dirs = tempfile::tempdir().unwrap();
    let a = instance(&database.url, &dirs.path().join("a"));
    let b = instance(&database.url, &dirs.path().join("b"));
    let (api_a, api_b) = (a.client(Some(&a.admin_key)), b.client(Some(&a.admin_key)));
    let backend = Arc::new(Backend::start().await);
    let connector = api_a.create_connector(&calls_connector(&backend)).await;
    let connector_id = common::id(&connector);

    // 2,000 connections, made through both.
    let mut seeding = tokio::task::JoinSet::new();
    for worker in 0..8usize {
        let api = if worker % 2 == 0 { api_a.clone() } else { api_b.clone() };
        let connector_id = connector_id.clone();
        seeding.spawn(async move {
            let mut made = Vec::new();
            for n in (worker..2000).step_by(8) {
                let key = format!("seeded-{n}");
                let body = json!({"connectorId": connector_id, "parameters": {"api_key": key}});
                made.push((common::id(&api.create_connection(&body).await), key));
            }
            made
        });
    }
    let mut seeded = Vec::new();
    while let Some(made) = seeding.join_next().await {
        seeded.extend(made.unwrap());
    }
    let seeded = Arc::new(seeded);

    // Calls and reads through both instances, until the rotation is over.
    let done = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..4u64 {
        let api = if worker % 2 == 0 { api_a.clone() } else { api_b.clone() };
        let (seeded, done, served, failed) = (seeded.clone(), done.clone(), served.clone(), failed.clone());
        load.spawn(async move {
            let mut n = worker as usize * 499;
            while !done.load(Ordering::Relaxed) {
                n = (n + 7) % seeded.len();
                let (connection, _) = &seeded[n];
                // A read opens the sealed secrets from the store; a call uses the prepared connection.
                let path = if n.is_multiple_of(2) {
                    format!("/v1/connections/{connection}")
                } else {
                    format!("/v1/connections/{connection}/proxy/ok")
                };
                let reply = api.get(&path).await;
                if reply.status == 200 {
                    served.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("{path}: {} {}", reply.status, reply.text);
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    let url = database.url.clone();
    let rotate_dir = dirs.path().join("c");
    let rotation = tokio::task::spawn_blocking(move || {
        keys(
            &["rotate", "--batch-size", "50"],
            &["--database", &url, "--data-dir", rotate_dir.to_str().unwrap()],
            &[("PORTICO_MASTER_KEY", TEST_MASTER_KEY)],
        )
    });
    // Connections made on either instance while it runs.
    let mut made_meanwhile = Vec::new();
    while !rotation.is_finished() {
        let api = if made_meanwhile.len().is_multiple_of(2) { &api_a } else { &api_b };
        let key = format!("meanwhile-{}", made_meanwhile.len());
        let body = json!({"connectorId": connector_id, "parameters": {"api_key": key}});
        made_meanwhile.push((common::id(&api.create_connection(&body).await), key));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rotated = printed(&rotation.await.unwrap(), "rotate");
    done.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    assert_eq!(failed.load(Ordering::Relaxed), 0, "calls failed during the rotation");
    assert!(served.load(Ordering::Relaxed) > 100, "calls were made: {}", served.load(Ordering::Relaxed));
    assert!(rotated["batches"].as_u64().unwrap() >= 40, "{rotated}");
    assert!(made_meanwhile.len() >= 5, "{}", made_meanwhile.len());

    let current = rotated["current"].as_str().unwrap().to_owned();
    let store = portico_store::open(&database.url).await.unwrap();
    assert_eq!(not_sealed_by(store.as_ref(), &current).await, []);
    let master = MasterKey::from_base64(TEST_MASTER_KEY).unwrap();
    let rotate_dir = dirs.path().join("c");
    let store_args = ["--database", database.url.as_str(), "--data-dir", rotate_dir.to_str().unwrap()];
    let total = 2000 + made_meanwhile.len() as u64;
    assert_eq!(
        status(&store_args, &[("PORTICO_MASTER_KEY", TEST_MASTER_KEY)]),
        [(current, "current".into(), total), (master.id().into(), "master".into(), 0)]
    );
    backend.take();
    for (connection, key) in &made_meanwhile {
        for api in [&api_a, &api_b] {
            let read = api.get(&format!("/v1/connections/{connection}")).await.expect_json(200);
            assert_eq!(read["secrets"], json!({"api_key": {"set": true}}));
            call_applies(api, &backend, connection, key).await;
        }
    }
    for (connection, key) in seeded.iter().step_by(97) {
        call_applies(&api_b, &backend, connection, key).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_is_rotated_while_an_instance_serves_with_the_old_one() {
    use base64::Engine as _;
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (old_file, new_file) = (dir.path().join("old.key"), dir.path().join("new.key"));
    let new_text = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
    std::fs::write(&old_file, TEST_MASTER_KEY).unwrap();
    std::fs::write(&new_file, &new_text).unwrap();
    let (old_master, new_master) =
        (MasterKey::from_base64(TEST_MASTER_KEY).unwrap(), MasterKey::from_base64(&new_text).unwrap());
    let (old_path, new_path) = (old_file.to_str().unwrap(), new_file.to_str().unwrap());
    let mut portico = Portico::launch(&data_dir, &["--allow-private-backends", "--master-key-file", old_path], &[]);
    let api = portico.api();
    let connector = api.create_connector(&calls_connector(&backend)).await;
    let mut connections = Vec::new();
    for n in 0..10 {
        let key = format!("key-{n}");
        let created =
            api.create_connection(&json!({"connectorId": connector["id"], "parameters": {"api_key": key}})).await;
        connections.push((common::id(&created), key));
    }

    // One connection's secret as stores made before data keys hold it.
    let url = format!("sqlite://{}", data_dir.join("portico.db").display());
    let store = portico_store::open(&url).await.unwrap();
    let tenant = store.tenant_by_name("default").await.unwrap().unwrap().id;
    let (legacy_id, legacy_key) = &connections[0];
    let mut legacy = store.connection(&tenant, legacy_id).await.unwrap().unwrap();
    let plaintext = serde_json::to_vec(&json!({"api_key": legacy_key})).unwrap();
    legacy.secrets = Some(SealedBytes(old_master.seal(&plaintext, legacy_id.as_bytes())));
    store.update_connection(&legacy).await.unwrap();

    let store_args = ["--data-dir", data_dir.to_str().unwrap(), "--master-key-file", old_path];
    let rotate_master = |new: &[&str]| {
        let args: Vec<&str> = ["rotate-master"].iter().chain(new).copied().collect();
        keys(&args, &store_args, &[])
    };
    let wrapped_before: Vec<_> = store.data_keys().await.unwrap().into_iter().map(|key| key.wrapped).collect();
    let refused = rotate_master(&["--new-master-key-file", new_path]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(&format!("1 stored value(s) are sealed by master key {}", old_master.id()))
            && stderr.contains("run `portico keys rotate` first"),
        "{stderr}"
    );
    let wrapped_after: Vec<_> = store.data_keys().await.unwrap().into_iter().map(|key| key.wrapped).collect();
    assert_eq!(wrapped_after, wrapped_before, "nothing written");
    let same = rotate_master(&["--new-master-key-file", old_path]);
    assert!(String::from_utf8_lossy(&same.stderr).contains("the new master key is the current one"), "{same:?}");

    // A data-key rotation re-seals the legacy value; then the master key can go.
    printed(&keys(&["rotate", "--grace-seconds", "6"], &store_args, &[]), "rotate");
    let data_key = store.data_keys().await.unwrap()[0].id.clone();

    // Calls and reads through the instance with the old key, during the rewrap and after.
    let done = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let load = {
        let (api, done, failed, connections) = (api.clone(), done.clone(), failed.clone(), connections.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let (connection, _) = &connections[n % connections.len()];
                let path = if n % 2 == 0 {
                    format!("/v1/connections/{connection}")
                } else {
                    format!("/v1/connections/{connection}/proxy/ok")
                };
                if api.get(&path).await.status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            n
        })
    };
    let rotate_args: Vec<String> = ["--new-master-key-env", "NEW_MASTER"].map(String::from).to_vec();
    let store_owned: Vec<String> = store_args.iter().map(|arg| (*arg).to_owned()).collect();
    let new_env = new_text.clone();
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = std::iter::once("rotate-master").chain(rotate_args.iter().map(String::as_str)).collect();
        let store: Vec<&str> = store_owned.iter().map(String::as_str).collect();
        keys(&args, &store, &[("NEW_MASTER", &new_env)])
    })
    .await
    .unwrap();
    let rotated = printed(&output, "rotate-master");
    assert_eq!(rotated, json!({"from": old_master.id(), "to": new_master.id(), "dataKeys": [data_key]}));
    for text in [&output.stdout, &output.stderr] {
        assert!(!common::contains(text, &new_text) && !common::contains(text, TEST_MASTER_KEY), "a key printed");
    }
    // Past a reload of the keys (every 5 s), the instance still serves, writes and reads.
    tokio::time::sleep(Duration::from_secs(6)).await;
    done.store(true, Ordering::Relaxed);
    assert!(load.await.unwrap() > 20, "calls were made");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "calls failed with the old master key in memory");
    let made =
        api.create_connection(&json!({"connectorId": connector["id"], "parameters": {"api_key": "made-after"}})).await;
    connections.push((common::id(&made), "made-after".to_owned()));
    backend.take();
    for (connection, key) in &connections {
        call_applies(&api, &backend, connection, key).await;
        let read = api.get(&format!("/v1/connections/{connection}")).await.expect_json(200);
        assert_eq!(read["secrets"], json!({"api_key": {"set": true}}));
    }
    let log = portico.stderr();
    assert!(
        log.contains(&format!("data key {data_key} in the store does not open with this process's master key"))
            && log.contains("restart this instance with the new one"),
        "{log}"
    );
    assert!(portico.stop().success());

    // Restarted with the new key: everything opens. With the old key: refused, naming both.
    let restarted = Portico::launch(&data_dir, &["--allow-private-backends", "--master-key-file", new_path], &[]);
    let api = restarted.api();
    for (connection, key) in &connections {
        call_applies(&api, &backend, connection, key).await;
    }
    let new_args = ["--data-dir", data_dir.to_str().unwrap(), "--master-key-file", new_path];
    assert_eq!(
        status(&new_args, &[]),
        [(data_key.clone(), "current".into(), 11), (new_master.id().into(), "master".into(), 0)]
    );
    drop(restarted);
    let refused = common::serve_refused(&data_dir, &["--master-key-file", old_path], &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "the master key (id {}) is not the one this store's secrets are sealed with (id {})",
            old_master.id(),
            new_master.id()
        )),
        "{stderr}"
    );
}

/// 32 random bytes: a new master key.
fn rand_bytes() -> [u8; 32] {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut random| random.read_exact(&mut bytes)).expect("random bytes");
    bytes
}
