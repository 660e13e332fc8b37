//! Soak: calls at a fixed rate through the proxy for a while — over API-key connections and
//! OAuth 2.0 connections whose access tokens live two seconds (so they renew every second and
//! the IdP rotates their refresh tokens) — while connections are made, changed and deleted
//! and API keys made and revoked beside them. No call may fail, and the server's resident
//! memory must stay flat.
//!
//! An open loop: call `n` is released at `start + n / rate` whether or not the earlier ones
//! were answered, and its latency counts from then. `PORTICO_SOAK_SECONDS` (default 60, what
//! CI runs; 30 in the suite's second pass, on PostgreSQL) and `PORTICO_SOAK_RATE` (calls per second, default 200) set it; `scripts/soak`
//! runs it for ten minutes. Resident memory (`VmRSS`) is read after a warm-up (a tenth of the
//! run, at least 5 s) and at the end, and may grow by at most [`RSS_GROWTH_MIB`] MiB or
//! [`RSS_GROWTH_PERCENT`] %, whichever is more. The figures are printed.
//!
//! SQLite by default, PostgreSQL with `PORTICO_TEST_DATABASE=postgres`. Needs Node and
//! `tests/idp` (skipped loudly without them, a failure under `CI=true`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::idp::{self, BASIC, Idp, IdpOptions};
use common::{Portico, fixture, id, string};
use serde_json::{Value, json};

const PRIVATE: &str = "--allow-private-backends";
const RSS_GROWTH_MIB: u64 = 20;
const RSS_GROWTH_PERCENT: u64 = 25;
const OAUTH_CONNECTIONS: usize = 2;
const KEY_CONNECTIONS: usize = 4;
/// A write every this often, beside the calls.
const WRITE_EVERY: Duration = Duration::from_millis(100);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}: a whole number")))
}

/// The resident memory of a process, in KiB (`VmRSS` in `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A line on the real standard error, past the test harness's capture: the figures are seen
/// whether the test passes or fails.
fn report(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The OAuth connector: the code flow at `idp`, with the IdP's resource as the backend.
fn code_connector(idp: &Idp) -> Value {
    let mut definition = fixture::json("oauth/code.json");
    definition["backend"]["host"] = json!(idp.issuer().trim_start_matches("http://"));
    definition["connection"]["credential"]["authorizationUrl"] = json!(idp.url("/auth"));
    definition["connection"]["credential"]["tokenUrl"] = json!(idp.url("/token"));
    json!({"definition": definition, "oauthClient": {"clientId": BASIC.id, "clientSecret": BASIC.secret}})
}

fn key_connector(backend: &Backend) -> Value {
    let mut definition = fixture::json("calls/api-key-header.json");
    definition["backend"]["host"] = json!(backend.authority());
    json!({"definition": definition})
}

#[derive(Default)]
struct Tally {
    sent: AtomicUsize,
    ok: AtomicUsize,
    failed: AtomicUsize,
    writes: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_at_a_fixed_rate_with_renewals_and_writes_never_fail_and_memory_stays_flat() {
    // The end-to-end suite's second pass, on PostgreSQL, soaks for half as long.
    let seconds = setting("PORTICO_SOAK_SECONDS", if common::pg::enabled() { 30 } else { 60 });
    let rate = setting("PORTICO_SOAK_RATE", 200);
    assert!(seconds >= 10 && rate >= 1, "PORTICO_SOAK_SECONDS at least 10, PORTICO_SOAK_RATE at least 1");
    let portico = Portico::start_with(&[PRIVATE]);
    let callback = format!("{}/oauth/callback", portico.base);
    let options = IdpOptions {
        access_token_ttl: Duration::from_secs(2),
        auto_approve: true,
        ..IdpOptions::redirecting_to(&callback)
    };
    let Some(idp) = Idp::try_start(&options) else { return };
    let backend = Backend::start().await;
    let api = portico.api();

    let oauth_connector = id(&api.create_connector(&code_connector(&idp)).await);
    let key_connector = id(&api.create_connector(&key_connector(&backend)).await);
    let mut paths = Vec::new();
    let mut oauth = Vec::new();
    for n in 0..OAUTH_CONNECTIONS {
        let created =
            api.create_connection(&json!({"connectorId": oauth_connector, "displayName": format!("oauth-{n}")})).await;
        let redirect = idp::sign_in(&string(&created, "authorizeUrl"), "alice", &callback).await;
        let path = redirect.strip_prefix(&portico.base).expect("Portico's callback");
        assert_eq!(portico.client(None).get(path).await.status, 200, "the callback");
        paths.push(format!("/v1/connections/{}/proxy/__test/resource", id(&created)));
        oauth.push(id(&created));
    }
    for n in 0..KEY_CONNECTIONS {
        let body = json!({"connectorId": key_connector, "displayName": format!("key-{n}"),
            "parameters": {"api_key": format!("soak-key-{n}")}});
        paths.push(format!("/v1/connections/{}/proxy/ok", id(&api.create_connection(&body).await)));
    }

    let tally = Arc::new(Tally::default());
    let duration = Duration::from_secs(seconds);
    let warm_up = (duration / 10).max(Duration::from_secs(5));
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let end = start + duration;

    // The writer: connections made, changed, deleted; keys made and revoked; OAuth connections
    // renamed while they renew.
    let writer = {
        let (api, tally, oauth, key_connector) = (api.clone(), tally.clone(), oauth.clone(), key_connector.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            while tokio::time::Instant::now() < end {
                tokio::time::sleep(WRITE_EVERY).await;
                n += 1;
                match n % 4 {
                    0 => {
                        let body = json!({"connectorId": key_connector, "displayName": format!("churn-{n}"),
                            "parameters": {"api_key": format!("churn-{n}")}});
                        let connection = id(&api.create_connection(&body).await);
                        let path = format!("/v1/connections/{connection}");
                        let patch =
                            json!({"displayName": format!("churned-{n}"), "parameters": {"api_key": "changed"}});
                        api.patch(&path, &patch).await.expect_json(200);
                        api.delete(&path).await.expect_empty(204);
                    }
                    1 => {
                        let created = api
                            .post(
                                "/v1/api-keys",
                                &json!({"name": format!("soak-{n}"), "role": "user",
                            "endUserId": "soak"}),
                            )
                            .await
                            .expect_json(201);
                        api.delete(&format!("/v1/api-keys/{}", id(&created))).await.expect_empty(204);
                    }
                    _ => {
                        let connection = &oauth[n % oauth.len()];
                        let rename = json!({"displayName": format!("oauth-renamed-{n}")});
                        api.patch(&format!("/v1/connections/{connection}"), &rename).await.expect_json(200);
                    }
                }
                tally.writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // The open loop, and the memory after the warm-up.
    let http = common::client_builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("a client");
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let total = (seconds * rate) as usize;
    let mut calls = tokio::task::JoinSet::new();
    let mut rss_start = None;
    let mut rss_peak = 0;
    let mut last_sample = Instant::now();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    for n in 0..total {
        let release = start + period * n as u32;
        tokio::time::sleep_until(release).await;
        let request = http.get(format!("{}{}", portico.base, paths[n % paths.len()])).bearer_auth(&portico.admin_key);
        let (tally, latencies, failures) = (tally.clone(), latencies.clone(), failures.clone());
        tally.sent.fetch_add(1, Ordering::Relaxed);
        calls.spawn(async move {
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.bytes().await {
                        Ok(_) if (200..300).contains(&status) => Ok(()),
                        Ok(body) => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
                        Err(e) => Err(format!("{status}, the body: {e}")),
                    }
                }
                Err(e) => Err(format!("no answer: {e}")),
            };
            let latency = release.elapsed();
            match outcome {
                Ok(()) => {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    latencies.lock().unwrap().push(latency);
                }
                Err(failure) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    failures.lock().unwrap().push(failure);
                }
            }
        });
        while calls.try_join_next().is_some() {}
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            let rss = rss_kib(portico.pid());
            rss_peak = rss_peak.max(rss);
            if rss_start.is_none() && release >= start + warm_up {
                rss_start = Some(rss);
            }
        }
    }
    while calls.join_next().await.is_some() {}
    writer.await.expect("the writer kept succeeding");
    let rss_end = rss_kib(portico.pid());
    let rss_start = rss_start.expect("a reading after the warm-up");
    rss_peak = rss_peak.max(rss_end);

    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let quantile = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
    let refreshes = idp.token_calls("refresh_token").await;
    let (sent, ok, failed) =
        (tally.sent.load(Ordering::Relaxed), tally.ok.load(Ordering::Relaxed), tally.failed.load(Ordering::Relaxed));
    report(&format!(
        "soak: {seconds} s at {rate}/s: {sent} calls, {ok} answered 2xx, {failed} failed; p50 {:.1?}, p99 {:.1?}, \
         max {:.1?}; {} writes; {refreshes} token renewals at the IdP; RSS {} after the {warm_up:?} warm-up, {} at \
         the end (peak {})",
        quantile(0.5),
        quantile(0.99),
        quantile(1.0),
        tally.writes.load(Ordering::Relaxed),
        mib(rss_start),
        mib(rss_end),
        mib(rss_peak),
    ));
    let failures = failures.lock().unwrap();
    assert_eq!(failed, 0, "every call succeeds; the first failures: {:?}", &failures[..failures.len().min(5)]);
    assert_eq!(ok, total);
    assert!(refreshes as u64 >= seconds / 2, "the OAuth connections kept renewing: {refreshes}");
    let allowed = (RSS_GROWTH_MIB * 1024).max(rss_start * RSS_GROWTH_PERCENT / 100);
    assert!(
        rss_end <= rss_start + allowed,
        "resident memory grew from {} to {} (at most {} allowed)",
        mib(rss_start),
        mib(rss_end),
        mib(allowed)
    );
}
