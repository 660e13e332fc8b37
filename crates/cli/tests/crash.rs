//! Crash safety: Portico killed with SIGKILL at random moments while OAuth 2.0 connections
//! renew their access tokens (the IdP, oidc-provider, rotates the refresh token on every
//! renewal) and while connections, API keys and webhooks are written, then started again on
//! the same store, round after round.
//!
//! After every restart each connection either works — a call reaches the backend with the
//! right credential: the IdP's resource accepts the access token, the recording backend gets
//! the API key that belongs with the connection's name — or is `needs_reauth` with a reason
//! (and then signs in again, so that the next round has it again). Nothing answers 500; no
//! connection says `connected` and fails with a credential error; every connection listed
//! reads back; every write Portico acknowledged before the kill is there, and none it did not
//! acknowledge is half there (a connection's name and key are written by one request, so they
//! must match).
//!
//! Every 25th kill waits for the IdP to answer a renewal, so that some surely land during
//! one. The random moments come from a seed, printed first (`PORTICO_CRASH_SEED=<seed>` replays a
//! run); `PORTICO_CRASH_ROUNDS` sets the rounds (at least 50). The counts (rounds, renewals
//! and rotations at the IdP, kills during a renewal, connections needing a new sign-in) are
//! printed at the end, and must show that renewals happened and that kills landed during them.
//!
//! SQLite by default, PostgreSQL with `PORTICO_TEST_DATABASE=postgres` (`scripts/test` runs
//! both). Needs Node and `tests/idp` (skipped loudly without them, a failure under `CI=true`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::idp::{self, BASIC, Idp, IdpOptions};
use common::{Portico, distinctive, fixture, id, random, string};
use reqwest::Method;
use serde_json::{Value, json};

const PRIVATE: &str = "--allow-private-backends";
/// OAuth connections, signed in once and never deleted.
const OAUTH_CONNECTIONS: usize = 3;
/// API-key connections at the start; the writer makes and deletes more.
const KEY_CONNECTIONS: usize = 4;
/// The fewest rounds a run may have.
const MIN_ROUNDS: usize = 50;
/// How long Portico runs under load before it is killed: uniformly in this range.
const KILL_AFTER_MS: (u64, u64) = (100, 800);
/// Callers that call through every connection, round after round.
const CALLERS: usize = 3;
/// Every this many rounds, the kill waits for a renewal (otherwise few land in one).
const TARGETED_EVERY: usize = 25;
/// A first call after a restart slower than this waited for a dead process's refresh lease.
const LEASE_HELD: Duration = Duration::from_secs(2);
/// The writer's pause between two writes: uniformly in this range.
const WRITE_GAP_MS: (u64, u64) = (5, 40);

/// splitmix64: small, seeded, good enough to pick moments and writes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn between(&mut self, (low, high): (u64, u64)) -> u64 {
        low + self.below(high - low + 1)
    }
}

/// What the test knows of a record it writes: acknowledged as present (with its name), or
/// acknowledged as deleted, or unknown (a write was sent and no answer came back).
#[derive(Debug, Clone, PartialEq)]
enum Known {
    Present(String),
    Deleted,
    Unsure,
}

/// Everything the writer has done, shared with the checks after a restart.
#[derive(Default)]
struct Ledger {
    /// API-key connections by id.
    connections: BTreeMap<String, Known>,
    /// API keys by id, with the key itself (never printed).
    keys: BTreeMap<String, (Known, String)>,
    /// Webhooks by id.
    webhooks: BTreeMap<String, Known>,
    /// The next number for a name.
    serial: usize,
}

/// The API key a connection named `name` must carry: the name and a suffix of this run, so
/// that a row whose name and sealed key were not written together is caught.
fn key_for(name: &str, suffix: &str) -> String {
    format!("{name}.{suffix}")
}

#[derive(Default)]
struct Counts {
    rounds: usize,
    calls_ok: AtomicUsize,
    /// Calls answered otherwise during the load, by status (404: the writer had just deleted
    /// the connection; 409: it needed a new sign-in; 502: a renewal failed).
    calls_refused: std::sync::Mutex<BTreeMap<u16, usize>>,
    writes_acknowledged: AtomicUsize,
    /// Rounds whose kill came after the IdP rotated a refresh token and before Portico
    /// reported it stored.
    rotations_lost: usize,
    /// Rounds whose kill landed during a renewal: either of the above and below.
    kills_during_refresh: usize,
    /// Rounds after which a call waited for the refresh lease the killed process held.
    kills_holding_a_lease: usize,
    needs_reauth: usize,
    needs_reauth_reasons: BTreeSet<String>,
}

/// A plain client of the server (the harness's panics when a server does not answer, and
/// this one is killed under the callers' feet).
fn client() -> reqwest::Client {
    common::client_builder().no_proxy().timeout(Duration::from_secs(20)).build().expect("an HTTP client")
}

#[derive(Clone)]
struct Run {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Run {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key)
    }

    /// A request that must be answered: status and body.
    async fn must(&self, request: reqwest::RequestBuilder, what: &str) -> (u16, String) {
        let response = request.send().await.unwrap_or_else(|e| panic!("{what}: no answer: {e:?}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_else(|e| panic!("{what}: no body: {e}"));
        assert_ne!(status, 500, "{what}: 500: {text}");
        (status, text)
    }

    async fn json(&self, method: Method, path: &str, body: Option<&Value>, expect: u16) -> Value {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let (status, text) = self.must(request, &format!("{method} {path}")).await;
        assert_eq!(status, expect, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    }

    /// Every item of a paged listing.
    async fn all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut url = format!("{path}?limit=100");
        loop {
            let page = self.json(Method::GET, &url, None, 200).await;
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page.get("next").and_then(Value::as_str) {
                Some(next) => url = format!("{path}?limit=100&after={next}"),
                None => return items,
            }
        }
    }
}

/// The OAuth connector: the code flow at `idp`, with the IdP's resource as the backend.
fn code_connector(idp: &Idp) -> Value {
    let mut definition = fixture::json("oauth/code.json");
    let authority = idp.issuer().trim_start_matches("http://").to_owned();
    definition["backend"]["host"] = json!(authority);
    definition["connection"]["credential"]["authorizationUrl"] = json!(idp.url("/auth"));
    definition["connection"]["credential"]["tokenUrl"] = json!(idp.url("/token"));
    json!({"definition": definition, "oauthClient": {"clientId": BASIC.id, "clientSecret": BASIC.secret}})
}

/// The API-key connector: the key in `X-Api-Key`, the recording backend behind it.
fn key_connector(backend: &Backend) -> Value {
    let mut definition = fixture::json("calls/api-key-header.json");
    definition["backend"]["host"] = json!(backend.authority());
    json!({"definition": definition})
}

/// Signs a pending (or re-authorizing) OAuth connection in: the IdP approves by itself, and
/// the browser lands on Portico's callback.
async fn sign_in(run: &Run, authorize_url: &str, callback: &str) {
    let redirect = idp::sign_in(authorize_url, "alice", callback).await;
    let (status, text) = run.must(run.http.get(&redirect), "the OAuth callback").await;
    assert_eq!(status, 200, "the callback: {text}");
}

/// Returns as soon as the IdP has answered one more refresh (or after 3 s).
async fn until_a_refresh(idp: &Idp) {
    let refreshes = |stats: Value| stats["token"]["refresh_token"].as_u64().unwrap_or_default();
    let before = refreshes(idp.stats().await);
    let deadline = Instant::now() + Duration::from_secs(3);
    while refreshes(idp.stats().await) == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Refreshes the IdP answered with 200 (each one rotated the refresh token), and all of them.
async fn refreshes_at(idp: &Idp) -> (usize, usize) {
    let events = idp.log_events("TOKEN").await;
    let refreshes: Vec<_> = events.iter().filter(|e| e["grant"] == "refresh_token").collect();
    (refreshes.iter().filter(|e| e["status"] == "200").count(), refreshes.len())
}

/// How many renewals this Portico stored (its log line after the store's write).
fn renewals_stored(portico: &Portico) -> usize {
    const RENEWED: &[u8] = b"access token renewed";
    portico.output_bytes().windows(RENEWED.len()).filter(|w| *w == RENEWED).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_works_or_needs_reauth_after_each_of_many_kill_9s() {
    let seed = std::env::var("PORTICO_CRASH_SEED").ok().map_or_else(random, |s| s.parse().expect("a u64 seed"));
    let rounds: usize = std::env::var("PORTICO_CRASH_ROUNDS").ok().map_or(MIN_ROUNDS, |r| r.parse().expect("rounds"));
    assert!(rounds >= MIN_ROUNDS, "at least {MIN_ROUNDS} rounds");
    report(&format!("crash: seed {seed} (replay with PORTICO_CRASH_SEED={seed}), {rounds} rounds"));
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    // One port for every start: the redirect URI registered at the IdP stays right.
    let port = portico_testkit::spare_port();
    let listen = format!("127.0.0.1:{port}");
    // The suite's debug filter, and the use cases' renewals, which are counted.
    let log = format!("{},portico_app::oauth=info", common::DEBUG_LOG);
    let args = [PRIVATE, "--listen", &listen, "--log", &log];
    let callback = format!("http://{listen}/oauth/callback");
    let options = IdpOptions {
        access_token_ttl: Duration::from_secs(1),
        auto_approve: true,
        ..IdpOptions::redirecting_to(&callback)
    };
    let Some(idp) = Idp::try_start(&options) else { return };
    let backend = Backend::start().await;
    let suffix = distinctive("");

    // The connections.
    let mut portico = Portico::start_in(&data_dir, &args);
    let run = Run { base: portico.base.clone(), key: portico.admin_key.clone(), http: client() };
    let oauth_connector = id(&run.json(Method::POST, "/v1/connectors", Some(&code_connector(&idp)), 201).await);
    let key_connector = id(&run.json(Method::POST, "/v1/connectors", Some(&key_connector(&backend)), 201).await);
    let mut oauth = Vec::new();
    for n in 0..OAUTH_CONNECTIONS {
        let body = json!({"connectorId": oauth_connector, "displayName": format!("oauth-{n}")});
        let created = run.json(Method::POST, "/v1/connections", Some(&body), 201).await;
        sign_in(&run, &string(&created, "authorizeUrl"), &callback).await;
        oauth.push(id(&created));
    }
    let ledger = Arc::new(tokio::sync::Mutex::new(Ledger::default()));
    for _ in 0..KEY_CONNECTIONS {
        let mut ledger = ledger.lock().await;
        ledger.serial += 1;
        let name = format!("keyed-{}", ledger.serial);
        let body = json!({"connectorId": key_connector, "displayName": name, "parameters": {"api_key": key_for(&name, &suffix)}});
        let created = run.json(Method::POST, "/v1/connections", Some(&body), 201).await;
        ledger.connections.insert(id(&created), Known::Present(name));
    }

    let counts = Arc::new(Counts::default());
    let mut counts_local = Counts::default();
    let started = Instant::now();
    let (mut idp_ok_before, _) = refreshes_at(&idp).await;
    let mut renewals_stored_total = 0;
    // Time spent under load, killing and counting, starting again, and checking.
    let mut timing = [Duration::ZERO; 4];
    for round in 0..rounds {
        // Load: callers through every connection, the writer, then SIGKILL at a random moment.
        let mut load = tokio::task::JoinSet::new();
        for caller in 0..CALLERS {
            let (run, oauth, ledger, counts) =
                (Run { http: client(), ..run_of(&portico) }, oauth.clone(), ledger.clone(), counts.clone());
            load.spawn(async move { call_loop(caller, &run, &oauth, &ledger, &counts).await });
        }
        {
            let run = Run { http: client(), ..run_of(&portico) };
            let (ledger, counts, suffix, oauth) = (ledger.clone(), counts.clone(), suffix.clone(), oauth.clone());
            let (key_connector, webhook_url) = (key_connector.clone(), format!("http://{}/hooks", backend.authority()));
            let write_seed = rng.next();
            load.spawn(async move {
                let context = WriteContext { key_connector, webhook_url, suffix, oauth };
                write_loop(&run, &context, &ledger, &counts, Rng(write_seed)).await
            });
        }
        let kill_after = Duration::from_millis(rng.between(KILL_AFTER_MS));
        let phase = Instant::now();
        tokio::time::sleep(kill_after).await;
        // Every 25th round the kill waits for a renewal: it lands as the IdP answers one.
        if round % TARGETED_EVERY == TARGETED_EVERY - 1 {
            until_a_refresh(&idp).await;
        }
        timing[0] += phase.elapsed();
        let phase = Instant::now();
        portico.kill_9();
        load.abort_all();
        while let Some(ended) = load.join_next().await {
            if let Err(error) = ended
                && error.is_panic()
            {
                report(&format!("crash: round {round} failed (seed {seed}, killed after {kill_after:?})"));
                std::panic::resume_unwind(error.into_panic());
            }
        }

        // What the IdP rotated against what Portico stored.
        let (idp_ok, _) = refreshes_at(&idp).await;
        let stored = renewals_stored(&portico);
        renewals_stored_total += stored;
        // Over this Portico's whole life, so the renewals of the checks after its start count.
        let lost = (idp_ok - idp_ok_before).saturating_sub(stored);
        idp_ok_before = idp_ok;
        if lost > 0 {
            counts_local.rotations_lost += 1;
        }

        // Restart on the same store (the killed one is kept until then: on PostgreSQL its
        // database lives as long as a Portico on this data directory).
        timing[1] += phase.elapsed();
        let phase = Instant::now();
        let next = Portico::start_in(&data_dir, &args);
        timing[2] += phase.elapsed();
        let phase = Instant::now();
        let killed = std::mem::replace(&mut portico, next);
        drop(killed);
        let run = run_of(&portico);
        let (needs, slowest) =
            check(&run, &oauth, &ledger, &callback, &suffix, &backend).await.unwrap_or_else(|failure| {
                panic!(
                    "round {round} (seed {seed}, killed after {kill_after:?}): {failure}\nserver log:\n{}",
                    tail(&portico)
                )
            });
        timing[3] += phase.elapsed();
        // A first call that waited: a killed process held the connection's refresh lease.
        if slowest > LEASE_HELD {
            counts_local.kills_holding_a_lease += 1;
        }
        if lost > 0 || slowest > LEASE_HELD {
            counts_local.kills_during_refresh += 1;
        }
        for reason in needs {
            counts_local.needs_reauth += 1;
            counts_local.needs_reauth_reasons.insert(reason);
        }
        counts_local.rounds += 1;
    }
    portico.stop();

    let (rotations, refreshes) = refreshes_at(&idp).await;
    let reasons: Vec<&String> = counts_local.needs_reauth_reasons.iter().collect();
    report(&format!(
        "crash: {} rounds in {:.0?} (seed {seed}): {refreshes} refreshes at the IdP, {rotations} rotations, \
         {renewals_stored_total} renewals stored by Portico, {} kills during a refresh ({} after the IdP rotated the \
         refresh token and before Portico had stored it, {} while a renewal held its lease), {} connections needed a new \
         sign-in (reasons: {reasons:?}); {} calls answered 2xx, others by status {:?}, {} writes acknowledged; \
         time under load {:.1?}, killing and counting {:.1?}, starting {:.1?}, checking {:.1?}",
        counts_local.rounds,
        started.elapsed(),
        counts_local.kills_during_refresh,
        counts_local.rotations_lost,
        counts_local.kills_holding_a_lease,
        counts_local.needs_reauth,
        counts.calls_ok.load(Ordering::Relaxed),
        counts.calls_refused.lock().unwrap(),
        counts.writes_acknowledged.load(Ordering::Relaxed),
        timing[0],
        timing[1],
        timing[2],
        timing[3],
    ));
    assert_eq!(counts_local.rounds, rounds);
    assert!(rotations >= rounds, "the connections kept renewing their tokens: {rotations} rotations");
    assert!(counts_local.kills_during_refresh >= 1, "some kills landed during a refresh");
    assert!(counts.writes_acknowledged.load(Ordering::Relaxed) >= rounds, "writes went on");
}

/// A line on the real standard error, past the test harness's capture: the seed and the counts
/// are seen whether the test passes or fails.
fn report(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn run_of(portico: &Portico) -> Run {
    Run { base: portico.base.clone(), key: portico.admin_key.clone(), http: client() }
}

/// The last lines the server printed, for a failure (its log holds no secret: the suite's
/// other tests check that).
fn tail(portico: &Portico) -> String {
    let output = portico.stderr();
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Calls through every connection until aborted; counts what was answered.
async fn call_loop(caller: usize, run: &Run, oauth: &[String], ledger: &tokio::sync::Mutex<Ledger>, counts: &Counts) {
    let mut turn = caller;
    loop {
        turn += 1;
        let path = if turn.is_multiple_of(2) {
            format!("/v1/connections/{}/proxy/__test/resource", oauth[turn / 2 % oauth.len()])
        } else {
            let ids: Vec<String> = ledger.lock().await.connections.keys().cloned().collect();
            if ids.is_empty() {
                continue;
            }
            format!("/v1/connections/{}/proxy/ok", ids[turn % ids.len()])
        };
        let Ok(response) = run.request(Method::GET, &path).send().await else { return };
        let status = response.status().as_u16();
        assert_ne!(status, 500, "a call answered 500: {}", response.text().await.unwrap_or_default());
        if (200..300).contains(&status) {
            counts.calls_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            *counts.calls_refused.lock().unwrap().entry(status).or_default() += 1;
        }
    }
}

struct WriteContext {
    key_connector: String,
    webhook_url: String,
    suffix: String,
    oauth: Vec<String>,
}

/// Writes one after another until aborted: each is marked unsure before it is sent and known
/// once answered, so that a kill leaves at most one write unsure.
async fn write_loop(
    run: &Run,
    context: &WriteContext,
    ledger: &tokio::sync::Mutex<Ledger>,
    counts: &Counts,
    mut rng: Rng,
) {
    loop {
        tokio::time::sleep(Duration::from_millis(rng.between(WRITE_GAP_MS))).await;
        let mut book = ledger.lock().await;
        book.serial += 1;
        let serial = book.serial;
        let mut choice = rng.below(10);
        // About as many connections, keys and webhooks are deleted as made.
        let connections = book.connections.values().filter(|k| matches!(k, Known::Present(_))).count();
        if choice < 2 && connections >= 2 * KEY_CONNECTIONS {
            choice = 4;
        }
        let pick = |map: Vec<String>, rng: &mut Rng| {
            (!map.is_empty()).then(|| map[rng.below(map.len() as u64) as usize].clone())
        };
        let present = |map: &BTreeMap<String, Known>| {
            map.iter().filter(|(_, k)| matches!(k, Known::Present(_))).map(|(id, _)| id.clone()).collect::<Vec<_>>()
        };
        let answered = match choice {
            // Make an API-key connection (its id is known only from the answer).
            0 | 1 => {
                let name = format!("keyed-{serial}");
                let body = json!({"connectorId": context.key_connector, "displayName": name,
                    "parameters": {"api_key": key_for(&name, &context.suffix)}});
                drop(book);
                let Some(created) = send(run, Method::POST, "/v1/connections", Some(body), 201).await else { return };
                ledger.lock().await.connections.insert(id(&created), Known::Present(name));
                true
            }
            // Rename a connection and change its key, in one request.
            2 | 3 => {
                let Some(target) = pick(present(&book.connections), &mut rng) else { continue };
                let name = format!("keyed-{serial}");
                book.connections.insert(target.clone(), Known::Unsure);
                drop(book);
                let body = json!({"displayName": name, "parameters": {"api_key": key_for(&name, &context.suffix)}});
                let path = format!("/v1/connections/{target}");
                let Some(_) = send(run, Method::PATCH, &path, Some(body), 200).await else { return };
                ledger.lock().await.connections.insert(target, Known::Present(name));
                true
            }
            4 => {
                let all = present(&book.connections);
                if all.len() <= 2 {
                    continue;
                }
                let target = all[rng.below(all.len() as u64) as usize].clone();
                book.connections.insert(target.clone(), Known::Unsure);
                drop(book);
                let Some(_) = send(run, Method::DELETE, &format!("/v1/connections/{target}"), None, 204).await else {
                    return;
                };
                ledger.lock().await.connections.insert(target, Known::Deleted);
                true
            }
            // Rename an OAuth connection, while it renews its token.
            5 => {
                drop(book);
                let target = &context.oauth[rng.below(context.oauth.len() as u64) as usize];
                let body = json!({"displayName": format!("oauth-renamed-{serial}")});
                let Some(_) = send(run, Method::PATCH, &format!("/v1/connections/{target}"), Some(body), 200).await
                else {
                    return;
                };
                true
            }
            6 | 7 => {
                let live: Vec<String> = book
                    .keys
                    .iter()
                    .filter(|(_, (k, _))| matches!(k, Known::Present(_)))
                    .map(|(id, _)| id.clone())
                    .collect();
                if choice == 7
                    && let Some(target) = pick(live, &mut rng)
                {
                    book.keys.get_mut(&target).expect("a key").0 = Known::Unsure;
                    drop(book);
                    let Some(_) = send(run, Method::DELETE, &format!("/v1/api-keys/{target}"), None, 204).await else {
                        return;
                    };
                    ledger.lock().await.keys.get_mut(&target).expect("a key").0 = Known::Deleted;
                } else {
                    drop(book);
                    let name = format!("key-{serial}");
                    let body = json!({"name": name, "role": "admin"});
                    let Some(created) = send(run, Method::POST, "/v1/api-keys", Some(body), 201).await else { return };
                    let key = string(&created, "key");
                    ledger.lock().await.keys.insert(id(&created), (Known::Present(name), key));
                }
                true
            }
            _ => {
                let live = present(&book.webhooks);
                if choice == 9
                    && let Some(target) = pick(live, &mut rng)
                {
                    book.webhooks.insert(target.clone(), Known::Unsure);
                    drop(book);
                    let Some(_) = send(run, Method::DELETE, &format!("/v1/webhooks/{target}"), None, 204).await else {
                        return;
                    };
                    ledger.lock().await.webhooks.insert(target, Known::Deleted);
                } else {
                    drop(book);
                    let body = json!({"url": format!("{}/{serial}", context.webhook_url)});
                    let Some(created) = send(run, Method::POST, "/v1/webhooks", Some(body), 201).await else { return };
                    ledger.lock().await.webhooks.insert(id(&created), Known::Present(format!("hook-{serial}")));
                }
                true
            }
        };
        if answered {
            counts.writes_acknowledged.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A write: its JSON answer (`{}` for an empty one) when answered with `expect`, `None` when
/// the server went away before answering. Any other answer fails the test.
async fn send(run: &Run, method: Method, path: &str, body: Option<Value>, expect: u16) -> Option<Value> {
    let mut request = run.request(method.clone(), path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    assert_eq!(status, expect, "{method} {path}: {text}");
    Some(if text.is_empty() { json!({}) } else { serde_json::from_str(&text).expect("a JSON answer") })
}

/// An OAuth connection after a restart: a call works, or the connection needs a new sign-in
/// with a reason, and works after it. The kind of reason, if it needed one, and how long the
/// first call took.
async fn check_oauth(
    run: &Run,
    connection: &str,
    was: &str,
    callback: &str,
) -> Result<(Option<String>, Duration), String> {
    let path = format!("/v1/connections/{connection}/proxy/__test/resource");
    let asked = Instant::now();
    let (code, text) = run.must(run.request(Method::GET, &path), "a call").await;
    let took = asked.elapsed();
    if code == 200 {
        return Ok((None, took));
    }
    let after = run.json(Method::GET, &format!("/v1/connections/{connection}"), None, 200).await;
    if code != 409 || after["status"] != "needs_reauth" {
        return Err(format!("OAuth connection {connection} (now {}) answered {code}: {text}; {was}", after["status"]));
    }
    let reason = after["statusReason"].as_str().unwrap_or_default().to_owned();
    if reason.trim().is_empty() {
        return Err(format!("OAuth connection {connection} needs_reauth without a reason: {after}"));
    }
    let started =
        run.json(Method::POST, &format!("/v1/connections/{connection}/reauthorize"), Some(&json!({})), 200).await;
    sign_in(run, &string(&started, "authorizeUrl"), callback).await;
    let (code, text) = run.must(run.request(Method::GET, &path), "a call after a new sign-in").await;
    if code != 200 {
        return Err(format!("OAuth connection {connection} signed in again and answered {code}: {text}"));
    }
    // The reason without the IdP's words, which vary: what kind of refusal it was.
    Ok((Some(reason.split(['(', ':']).take(2).collect::<Vec<_>>().join(":").trim().to_owned()), took))
}

/// After a restart: every connection works or needs a new sign-in (and gets it), every
/// acknowledged write is there, nothing is half written. The reasons of the connections that
/// needed a new sign-in; an error describing the first thing wrong.
async fn check(
    run: &Run,
    oauth: &[String],
    ledger: &tokio::sync::Mutex<Ledger>,
    callback: &str,
    suffix: &str,
    backend: &Backend,
) -> Result<(Vec<String>, Duration), String> {
    let mut needs = Vec::new();
    // Every connection listed reads back.
    let listed = run.all("/v1/connections").await;
    let mut names = BTreeMap::new();
    for item in &listed {
        let id = id(item);
        let read = run.json(Method::GET, &format!("/v1/connections/{id}"), None, 200).await;
        let name = string(&read, "displayName");
        let status = string(&read, "status");
        if !["connected", "needs_reauth"].contains(&status.as_str()) {
            return Err(format!("connection {id} ({name}) is {status}: {read}"));
        }
        names.insert(id, (name, status, read));
    }

    // OAuth connections, side by side (a lease a killed process held makes a call wait).
    let mut checks = tokio::task::JoinSet::new();
    for connection in oauth {
        let (_, status, read) = names.get(connection).ok_or(format!("OAuth connection {connection} is gone"))?;
        let (run, connection, callback) = (run.clone(), connection.clone(), callback.to_owned());
        let was = format!("was {status}: {read}");
        checks.spawn(async move { check_oauth(&run, &connection, &was, &callback).await });
    }
    let mut slowest = Duration::ZERO;
    while let Some(checked) = checks.join_next().await {
        let (reason, took) = checked.expect("a check")?;
        needs.extend(reason);
        slowest = slowest.max(took);
    }

    // API-key connections: acknowledged writes are there; each carries the key of its name.
    let mut book = ledger.lock().await;
    for (id, known) in &book.connections {
        match (known, names.get(id)) {
            (Known::Present(name), Some((listed_name, _, _))) if name != listed_name => {
                return Err(format!("connection {id}: acknowledged as {name}, stored as {listed_name}"));
            }
            (Known::Present(name), None) => return Err(format!("connection {id} ({name}) was acknowledged, is gone")),
            (Known::Deleted, Some(_)) => return Err(format!("connection {id} was deleted, is back")),
            _ => {}
        }
    }
    backend.take();
    let keyed: Vec<(&String, &String)> =
        names.iter().filter(|(id, _)| !oauth.contains(id)).map(|(id, (name, _, _))| (id, name)).collect();
    for (id, name) in &keyed {
        let path = format!("/v1/connections/{id}/proxy/probe/{id}");
        let (code, text) = run.must(run.request(Method::GET, &path), "a call").await;
        if code != 200 {
            return Err(format!("API-key connection {id} ({name}) answered {code}: {text}"));
        }
        let probe = format!("/api/probe/{id}");
        let received = backend.take().into_iter().filter(|r| r.path == probe).collect::<Vec<_>>();
        let [request] = received.as_slice() else {
            return Err(format!("connection {id}: {} requests reached the backend", received.len()));
        };
        // Compared, never printed.
        if request.header("x-api-key") != Some(key_for(name, suffix).as_str()) {
            return Err(format!("connection {id} ({name}) carried a key that is not its name's"));
        }
    }
    book.connections = keyed.iter().map(|(id, name)| ((*id).clone(), Known::Present((*name).clone()))).collect();

    // API keys: an acknowledged key authenticates, an acknowledged revocation holds.
    let listed: BTreeSet<String> = run.all("/v1/api-keys").await.iter().map(id).collect();
    let mut keys = BTreeMap::new();
    for (id, (known, key)) in &book.keys {
        let answer = run.http.get(format!("{}/v1/connectors", run.base)).bearer_auth(key).send().await;
        let status = answer.map_err(|e| format!("no answer: {e}"))?.status().as_u16();
        match known {
            Known::Present(name) if status != 200 || !listed.contains(id) => {
                return Err(format!("API key {id} ({name}) was acknowledged and answers {status}"));
            }
            Known::Deleted if status != 401 => return Err(format!("API key {id} was revoked and answers {status}")),
            _ => {}
        }
        match status {
            200 => keys.insert(id.clone(), (Known::Present(format!("key {id}")), key.clone())),
            401 => None,
            other => return Err(format!("API key {id} answers {other}")),
        };
    }
    book.keys = keys;

    // Webhooks: the acknowledged ones are there, each reads back.
    let listed: BTreeSet<String> = run.all("/v1/webhooks").await.iter().map(id).collect();
    for (id, known) in &book.webhooks {
        match known {
            Known::Present(_) if !listed.contains(id) => return Err(format!("webhook {id} was acknowledged, is gone")),
            Known::Deleted if listed.contains(id) => return Err(format!("webhook {id} was deleted, is back")),
            _ => {}
        }
    }
    for id in &listed {
        run.json(Method::GET, &format!("/v1/webhooks/{id}"), None, 200).await;
    }
    book.webhooks = listed.into_iter().map(|id| (id, Known::Present(String::new()))).collect();
    Ok((needs, slowest))
}

/// Regression: a Portico killed during a refresh left the connection's refresh lease in the
/// store for 30 s (the longest a token request may take), and every call through the connection
/// after the restart waited for it, then failed. The lease now lasts seconds and is extended
/// while its refresh runs, so a dead holder's runs out soon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_lease_left_by_a_killed_portico_holds_calls_for_seconds_only() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data_dir = dir.path().join("data");
    let listen = format!("127.0.0.1:{}", portico_testkit::spare_port());
    let args = [PRIVATE, "--listen", &listen];
    let callback = format!("http://{listen}/oauth/callback");
    let options = IdpOptions {
        access_token_ttl: Duration::from_secs(1),
        auto_approve: true,
        ..IdpOptions::redirecting_to(&callback)
    };
    let Some(idp) = Idp::try_start(&options) else { return };
    let mut first = Portico::start_in(&data_dir, &args);
    let run = run_of(&first);
    let connector = id(&run.json(Method::POST, "/v1/connectors", Some(&code_connector(&idp)), 201).await);
    let created = run.json(Method::POST, "/v1/connections", Some(&json!({"connectorId": connector})), 201).await;
    sign_in(&run, &string(&created, "authorizeUrl"), &callback).await;
    let path = format!("/v1/connections/{}/proxy/__test/resource", id(&created));

    // The next token request hangs at the IdP; a call past the renewal time starts it, holding
    // the lease, and Portico dies meanwhile.
    idp.delay_next(1, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hanging = tokio::spawn(run.request(Method::GET, &path).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill_9();
    hanging.abort();

    let second = Portico::start_in(&data_dir, &args);
    drop(first);
    let run = run_of(&second);
    let asked = Instant::now();
    let (status, text) = run.must(run.request(Method::GET, &path), "a call after the restart").await;
    let waited = asked.elapsed();
    report(&format!("lease: the first call after the restart answered {status} after {waited:.1?}"));
    assert!(
        status == 200 || (status == 409 && text.contains("needs_reauth")),
        "the call works or says the connection needs a new sign-in: {status} {text}"
    );
    assert!(waited < Duration::from_secs(10), "the call waited {waited:?} for a dead process's lease");
}
