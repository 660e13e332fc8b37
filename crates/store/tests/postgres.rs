//! The store on PostgreSQL: every engine-generic behaviour (tests/behaviour), each test on a
//! database of its own, and what only a shared server has: several stores (instances) on one
//! database racing for leases, sign-in states and connectors, and a server restart under a
//! live pool (on a private cluster made with initdb/pg_ctl, never the shared server).
//!
//! Without a reachable PostgreSQL the tests print `SKIPPED: …` and pass; under `CI=true`
//! they fail. See tests/support for `PORTICO_TEST_POSTGRES`.

mod behaviour;
mod support;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portico_store::{
    Attempt, AttemptNext, DeleteConnector, DeliveryQueue, Effects, PgOptions, PgStore, Store, StoreError, new_id,
    now_millis,
};
use portico_testkit::pg::{PrivateCluster, TestDatabase, with_database};
use portico_testkit::spare_port;
use support::{
    Ctx, EVERY_CONNECTION, connection_record, connector_record, event_record, of_connector, state_record,
    test_pg_options, webhook_record,
};
use tokio::sync::Barrier;

behaviour_tests!(support::Ctx::postgres());

/// Two stores on one database, as two Portico instances have.
async fn two_instances() -> Option<(Ctx, Ctx)> {
    let first = Ctx::postgres().await?;
    let second = first.reopen().await;
    Some((first, second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_contend_for_one_lease_and_exactly_one_wins() {
    let Some((a, b)) = two_instances().await else { return };
    let stores = [a.shared(), b.shared()];
    const CONTENDERS: usize = 8;
    for round in 0..40 {
        let name = format!("refresh:{round}");
        // Free, then expired: both ways exactly one contender gets it.
        for (now, until) in [(1_000, 2_000), (2_001, 3_000)] {
            let barrier = Arc::new(Barrier::new(CONTENDERS));
            let mut tasks = Vec::new();
            for index in 0..CONTENDERS {
                let (store, barrier, name) = (stores[index % 2].clone(), barrier.clone(), name.clone());
                tasks.push(tokio::spawn(async move {
                    let holder = format!("instance-{}-{round}-{now}-{index}", index % 2);
                    barrier.wait().await;
                    (store.acquire_lease(&name, &holder, now, until).await.unwrap(), holder)
                }));
            }
            let mut winners = Vec::new();
            for task in tasks {
                let (won, holder) = task.await.unwrap();
                if won {
                    winners.push(holder);
                }
            }
            assert_eq!(winners.len(), 1, "round {round} at {now}: {winners:?}");
            // The winner holds it: the other instance is refused until it expires, the
            // winner may extend it.
            for store in &stores {
                assert!(!store.acquire_lease(&name, "someone-else", now + 1, until).await.unwrap());
            }
            assert!(stores[1].acquire_lease(&name, &winners[0], now + 1, until).await.unwrap());
        }
    }
    a.finish().await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_state_raced_from_two_stores_is_taken_once() {
    let Some((a, b)) = two_instances().await else { return };
    let tenant = a.store().create_tenant("acme").await.unwrap().id;
    let stores = [a.shared(), b.shared()];
    for round in 0..40 {
        let hash = format!("state-{round}");
        let record = state_record(&tenant, &hash, now_millis() + 600_000);
        stores[round % 2].insert_oauth_state(&record).await.unwrap();
        let barrier = Arc::new(Barrier::new(4));
        let mut tasks = Vec::new();
        for index in 0..4 {
            let (store, barrier, hash) = (stores[index % 2].clone(), barrier.clone(), hash.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.take_oauth_state(&hash, now_millis()).await.unwrap()
            }));
        }
        let mut taken = Vec::new();
        for task in tasks {
            taken.extend(task.await.unwrap());
        }
        assert_eq!(taken, vec![record], "round {round}");
    }
    a.finish().await;
    b.finish().await;
}

/// A cascade delete on one instance while the other keeps adding connections to the same
/// connector: every connection that was added is counted and deleted, every later one is
/// refused, and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_delete_racing_new_connections_counts_exactly_what_it_deletes() {
    let Some((a, b)) = two_instances().await else { return };
    let (writer, deleter) = (a.shared(), b.shared());
    let tenant = writer.create_tenant("acme").await.unwrap().id;
    for round in 0..12 {
        let connector = connector_record(&tenant);
        writer.insert_connector(&connector).await.unwrap();
        let inserts = {
            let (writer, tenant, connector_id) = (writer.clone(), tenant.clone(), connector.id.clone());
            tokio::spawn(async move {
                let mut added = 0u64;
                for _ in 0..40 {
                    match writer.insert_connection(&connection_record(&tenant, &connector_id)).await {
                        Ok(()) => added += 1,
                        Err(StoreError::Conflict(_)) => {}
                        Err(other) => panic!("{other:?}"),
                    }
                }
                added
            })
        };
        // Let some inserts land first, differently each round.
        tokio::time::sleep(Duration::from_millis(round * 3)).await;
        let deleted = deleter.delete_connector(&tenant, &connector.id, true).await.unwrap();
        let added = inserts.await.unwrap();
        assert_eq!(deleted, DeleteConnector::Deleted { connections: added }, "round {round}");
        assert!(
            writer.list_connections(&tenant, &of_connector(&connector.id), None, 100).await.unwrap().items.is_empty()
        );
    }
    assert!(writer.list_connections(&tenant, &EVERY_CONNECTION, None, 100).await.unwrap().items.is_empty());
    a.finish().await;
    b.finish().await;
}

/// What each claimer took in one go at the outbox: `(holder, delivery id)`.
async fn claim_at_once(stores: &[Arc<dyn Store>; 2], name: &str, now: i64) -> Vec<(String, String)> {
    const CLAIMERS: usize = 6;
    let barrier = Arc::new(Barrier::new(CLAIMERS));
    let mut tasks = Vec::new();
    for index in 0..CLAIMERS {
        let (store, barrier) = (stores[index % 2].clone(), barrier.clone());
        let holder = format!("instance-{}-sender-{index}-{name}", index % 2);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // As a sender does: small batches until nothing is left for it.
            let mut claimed = Vec::new();
            loop {
                let jobs = store.claim_deliveries(&holder, now, now + 500, 3).await.unwrap();
                if jobs.is_empty() {
                    return claimed;
                }
                claimed.extend(jobs.into_iter().map(|job| (holder.clone(), job.delivery.id)));
            }
        }));
    }
    let mut claims = Vec::new();
    for task in tasks {
        claims.extend(task.await.unwrap());
    }
    claims
}

/// Two instances' senders claiming one outbox at once, round after round: each delivery is
/// claimed by one holder at a time — when free, and again when that claim has run out —, and of
/// each webhook and connection only the earliest pending delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_claiming_at_once_never_claim_one_delivery_twice() {
    let Some((a, b)) = two_instances().await else { return };
    let stores = [a.shared(), b.shared()];
    let tenant = stores[0].create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&tenant);
    stores[0].insert_connector(&connector).await.unwrap();
    let webhooks = [webhook_record(&tenant, None), webhook_record(&tenant, None)];
    for webhook in &webhooks {
        stores[0].insert_webhook(webhook).await.unwrap();
    }
    let mut connections = Vec::new();
    for _ in 0..4 {
        let record = connection_record(&tenant, &connector.id);
        stores[0].insert_connection(&record).await.unwrap();
        connections.push(record);
    }
    let delivered = |at| Attempt { at, status: Some(204), error: None, next: AttemptNext::Delivered };

    for round in 0..30 {
        let start = 1_000_000 + round * 10_000;
        // Two events about each connection: sixteen deliveries, half of them first of their key.
        let (mut firsts, mut seconds) = (BTreeSet::new(), BTreeSet::new());
        for connection in &connections {
            let events = [0, 1].map(|_| event_record(&tenant, "connection.updated", &connection.id, start));
            let effects = Effects { events: &events, ..Effects::NONE };
            assert!(stores[round as usize % 2].update_connection_with(connection, effects).await.unwrap());
            for webhook in &webhooks {
                firsts.insert(format!("{}:{}", events[0].id, webhook.id));
                seconds.insert(format!("{}:{}", events[1].id, webhook.id));
            }
        }
        // The firsts, free; the firsts again once those claims ran out (not recorded); then the
        // seconds, once the firsts are delivered.
        let mut lost = Vec::new();
        for (phase, now, expected) in
            [("free", start + 1_000, &firsts), ("ran out", start + 2_000, &firsts), ("next", start + 3_000, &seconds)]
        {
            let name = format!("{round}-{phase}");
            let mut claims = claim_at_once(&stores, &name, now).await;
            let mut seen = BTreeSet::new();
            for (_, id) in &claims {
                assert!(seen.insert(id.clone()), "round {round}, {phase}: {id} claimed twice: {claims:?}");
            }
            // A claimer stops at its first empty batch: whatever none took, one more claim gets.
            for job in stores[0].claim_deliveries(&format!("sweeper-{name}"), now, now + 500, 100).await.unwrap() {
                assert!(
                    seen.insert(job.delivery.id.clone()),
                    "round {round}, {phase}: {} claimed twice",
                    job.delivery.id
                );
                claims.push((format!("sweeper-{name}"), job.delivery.id));
            }
            assert_eq!(&seen, expected, "round {round}, {phase}");
            if phase == "free" {
                lost = claims;
                continue;
            }
            for (holder, id) in &claims {
                assert!(stores[1].record_attempt(id, holder, &delivered(now)).await.unwrap(), "{holder}: {id}");
            }
            for (holder, id) in lost.drain(..) {
                assert!(!stores[0].record_attempt(&id, &holder, &delivered(now)).await.unwrap(), "{holder}: {id}");
            }
        }
    }
    assert_eq!(stores[0].delivery_queue().await.unwrap(), DeliveryQueue::default());
    a.finish().await;
    b.finish().await;
}

/// Instances writing at once through two pools: nothing fails, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_two_stores_lose_nothing() {
    let Some((a, b)) = two_instances().await else { return };
    let stores = [a.shared(), b.shared()];
    let tenant = stores[0].create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&tenant);
    stores[0].insert_connector(&connector).await.unwrap();
    let mut tasks = Vec::new();
    for index in 0..16 {
        let (store, tenant, connector_id) = (stores[index % 2].clone(), tenant.clone(), connector.id.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for step in 0..10 {
                let mut record = connection_record(&tenant, &connector_id);
                store.insert_connection(&record).await.unwrap();
                record.display_name = format!("writer {index} step {step}");
                assert!(store.update_connection(&record).await.unwrap());
                store.init_setting("shared", format!("{index}").as_bytes()).await.unwrap();
                ids.push(record.id);
            }
            ids
        }));
    }
    let mut written = HashSet::new();
    for task in tasks {
        written.extend(task.await.unwrap());
    }
    for store in &stores {
        let mut seen = HashSet::new();
        let mut cursor = None;
        loop {
            let page =
                store.list_connections(&tenant, &of_connector(&connector.id), cursor.as_deref(), 37).await.unwrap();
            for record in &page.items {
                assert!(record.display_name.starts_with("writer "), "{record:?}");
            }
            seen.extend(page.items.into_iter().map(|record| record.id));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, written);
    }
    let first = stores[0].setting("shared").await.unwrap().unwrap();
    assert_eq!(stores[1].setting("shared").await.unwrap().unwrap(), first, "one value for everyone");
    a.finish().await;
    b.finish().await;
}

/// Instances starting together on an empty database: the migrations run once (under
/// PostgreSQL's advisory lock), exactly one creates the first tenant, and they agree on the
/// first setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once_and_agree() {
    let Some(database) = TestDatabase::try_create() else { return };
    let barrier = Arc::new(Barrier::new(4));
    let mut tasks = Vec::new();
    for index in 0..4 {
        let (url, barrier) = (database.url.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let store = PgStore::open_with(&url, test_pg_options()).await.unwrap();
            let created = match store.create_tenant("default").await {
                Ok(_) => true,
                Err(StoreError::Conflict(message)) => {
                    assert_eq!(message, "tenant 'default'");
                    false
                }
                Err(other) => panic!("{other:?}"),
            };
            let check = store.init_setting("key-check", format!("sealed by {index}").as_bytes()).await.unwrap();
            (store, created, check)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(results.iter().filter(|(_, created, _)| *created).count(), 1, "one instance creates the tenant");
    assert!(results.iter().all(|(_, _, check)| *check == results[0].2), "one setting for all");
    let (migrations,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(results[0].0.pool()).await.unwrap();
    assert_eq!(usize::try_from(migrations).unwrap(), PgStore::migrator().iter().count());
    assert_eq!(results[0].0.tenant_count().await.unwrap(), 1);
    for (store, ..) in results {
        store.close().await;
    }
}

/// An older instance restarting after a newer one applied a migration it does not know (a
/// rolling upgrade) still starts.
#[tokio::test]
async fn a_migration_from_a_newer_version_does_not_stop_an_older_instance() {
    let Some(ctx) = Ctx::postgres().await else { return };
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from a newer portico', TRUE, '\\x00', 0)",
    )
    .execute(ctx.pg().pool())
    .await
    .unwrap();
    let older = ctx.reopen().await;
    older.store().ping().await.unwrap();
    let mut expected = older.known_migrations();
    expected.push(9999);
    assert_eq!(older.applied_migrations(), expected);
    older.finish().await;
    ctx.finish().await;
}

#[tokio::test]
async fn open_picks_postgres_by_scheme() {
    let Some(ctx) = Ctx::postgres().await else { return };
    let url = ctx.database().url().to_owned();
    for url in [url.clone(), url.replacen("postgres://", "postgresql://", 1)] {
        let store = portico_store::open(&url).await.unwrap();
        store.create_tenant(&new_id()).await.unwrap();
    }
    assert_eq!(ctx.store().tenant_count().await.unwrap(), 2);
    ctx.finish().await;
}

#[tokio::test]
async fn a_missing_database_is_unavailable_and_the_password_is_not_shown() {
    let Some(ctx) = Ctx::postgres().await else { return };
    // Trust authentication ignores the password; the database does not exist.
    let url = with_database(ctx.database().url(), "portico_no_such_database").replacen(
        "://postgres@",
        "://postgres:hunter2-secret@",
        1,
    );
    let error = PgStore::open(&url).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("portico_no_such_database"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    ctx.finish().await;
}

/// Needs no server: nothing listens on the port.
#[tokio::test]
async fn an_unreachable_server_is_unavailable_within_the_acquire_timeout() {
    let port = spare_port();
    let options = PgOptions { acquire_timeout: Duration::from_millis(500), ..PgOptions::default() };
    let started = Instant::now();
    let error =
        PgStore::open_with(&format!("postgres://postgres@127.0.0.1:{port}/portico"), options).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn the_pool_defaults_are_as_documented() {
    let options = PgOptions::default();
    assert_eq!(options.max_connections, 10);
    assert_eq!(options.min_connections, 0);
    assert_eq!(options.acquire_timeout, Duration::from_secs(5));
    assert_eq!(options.statement_timeout, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn a_statement_stuck_on_a_lock_fails_after_the_statement_timeout() {
    let Some(ctx) = Ctx::postgres().await else { return };
    let options = PgOptions { statement_timeout: Some(Duration::from_millis(300)), ..test_pg_options() };
    let store = PgStore::open_with(ctx.database().url(), options).await.unwrap();
    let tenant = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&tenant);
    store.insert_connector(&connector).await.unwrap();
    // Another session holds the connector row.
    let mut blocker = ctx.pg().pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM connectors WHERE id = $1 FOR UPDATE")
        .bind(&connector.id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let started = Instant::now();
    let error = store.delete_connector(&tenant, &connector.id, true).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    blocker.rollback().await.unwrap();
    assert_eq!(
        store.delete_connector(&tenant, &connector.id, true).await.unwrap(),
        DeleteConnector::Deleted { connections: 0 }
    );
    store.close().await;
    ctx.finish().await;
}

// ---------------------------------------------------------------------------------------------
// A server restart under a live pool, on a private cluster.

/// Polls until `ready` holds or the deadline passes.
async fn eventually<F, Fut>(deadline: Duration, mut ready: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if ready().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// One pool across two restarts of its server (a clean `fast` shutdown and an `immediate`
/// one, as a crash): calls while the server is down fail with `Unavailable` within the
/// acquire timeout, calls afterwards succeed on the same pool, and every write that was
/// acknowledged, before or under load around the restarts, is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_survives_a_restart_of_its_server() {
    let Some(cluster) = PrivateCluster::try_start() else { return };
    const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
    let options = PgOptions { max_connections: 4, acquire_timeout: ACQUIRE_TIMEOUT, ..PgOptions::default() };
    let store = Arc::new(PgStore::open_with(&cluster.admin_url(), options).await.unwrap());
    let tenant = store.create_tenant("acme").await.unwrap().id;
    let connector = connector_record(&tenant);
    store.insert_connector(&connector).await.unwrap();
    // Fill the pool, so that idle connections die with the server.
    let warm: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { sqlx::query("SELECT pg_sleep(0.05)").execute(store.pool()).await.unwrap() })
        })
        .collect();
    for task in warm {
        task.await.unwrap();
    }

    // Load: a writer that keeps adding connections all along.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop, tenant, connector_id) = (store.clone(), stop.clone(), tenant.clone(), connector.id.clone());
        tokio::spawn(async move {
            let (mut acknowledged, mut unavailable) = (Vec::new(), 0u32);
            while !stop.load(Ordering::Relaxed) {
                let record = connection_record(&tenant, &connector_id);
                match store.insert_connection(&record).await {
                    Ok(()) => acknowledged.push(record.id),
                    Err(StoreError::Unavailable(_)) => unavailable += 1,
                    Err(other) => panic!("only Unavailable is expected while the server is away: {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (acknowledged, unavailable)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    for mode in ["fast", "immediate"] {
        cluster.stop(mode).unwrap();
        // While it is down: clean errors, within the acquire timeout (and a margin).
        for attempt in 0..2 {
            let started = Instant::now();
            // At once: each waits for a connection until the acquire timeout.
            let (name, missing) = (format!("during-{mode}-{attempt}"), new_id());
            let (ping, count, create, read) = tokio::join!(
                store.ping(),
                store.tenant_count(),
                store.create_tenant(&name),
                store.connection(&tenant, &missing),
            );
            let results = [ping.map(drop), count.map(drop), create.map(drop), read.map(drop)];
            for result in results {
                let error = result.expect_err("the server is down");
                assert!(matches!(error, StoreError::Unavailable(_)), "{mode}: {error:?}");
            }
            assert!(started.elapsed() < ACQUIRE_TIMEOUT + Duration::from_secs(3), "{:?}", started.elapsed());
        }
        cluster.start().unwrap();
        // Afterwards: the same pool works again.
        assert!(
            eventually(Duration::from_secs(30), || async { store.ping().await.is_ok() }).await,
            "the pool did not recover after a {mode} restart"
        );
        assert_eq!(store.tenant_by_name("acme").await.unwrap().unwrap().id, tenant);
        assert_eq!(store.connector(&tenant, &connector.id).await.unwrap(), Some(connector.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    stop.store(true, Ordering::Relaxed);
    let (acknowledged, unavailable) = writer.await.unwrap();
    assert!(unavailable > 0, "the writer never saw the server away");
    assert!(acknowledged.len() > 10, "the writer wrote little: {}", acknowledged.len());
    let mut stored = HashSet::new();
    let mut cursor = None;
    loop {
        let page = store.list_connections(&tenant, &EVERY_CONNECTION, cursor.as_deref(), 500).await.unwrap();
        stored.extend(page.items.into_iter().map(|record| record.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let lost: Vec<_> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    for attempt in 0..2 {
        for mode in ["fast", "immediate"] {
            assert_eq!(store.tenant_by_name(&format!("during-{mode}-{attempt}")).await.unwrap(), None);
        }
    }
    println!(
        "restart test: {} writes acknowledged and kept, {unavailable} refused as unavailable while the server was away",
        acknowledged.len()
    );
    store.close().await;
    cluster.stop("fast").unwrap();
}

#[tokio::test]
async fn text_with_a_nul_character_is_refused_as_unstorable_not_as_an_outage() {
    let Some(ctx) = Ctx::postgres().await else { return };
    let store = ctx.store();
    let tenant = store.create_tenant("acme").await.unwrap();
    for error in [
        store.connector(&tenant.id, "a\0b").await.unwrap_err(),
        store.list_connectors(&tenant.id, Some("a\0b"), 10).await.unwrap_err(),
        store.create_tenant("nul\0").await.unwrap_err(),
    ] {
        assert!(matches!(error, StoreError::Unstorable(_)), "{error:?}");
    }
    // The store still answers.
    assert_eq!(store.tenant_count().await.unwrap(), 1);
}
