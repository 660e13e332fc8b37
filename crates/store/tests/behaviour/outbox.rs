//! Connect sessions, webhooks and the outbox: what a write does besides itself ([`Effects`], in
//! its transaction or not at all), the fan-out of an event to the webhooks that take it, and the
//! deliveries that instances claim, attempt and record.

use std::sync::Mutex;

use portico_store::{
    Attempt, AttemptNext, ConnectSessionRecord, ConnectionRecord, ConnectionStatus, ConnectorRecord, DeleteConnector,
    DeliveryQueue, DeliveryRecord, DeliveryState, Effects, EventRecord, SealedBytes, Store, StoreError, WebhookRecord,
    new_id, now_millis,
};

use crate::support::{
    Ctx, awkward_bytes, connection_record, connector_record, event_record, key_hash, owned_connection, pages,
    pending_delivery, session_record, two_tenants, webhook_record,
};

/// Two tenants; in the first a connector, a connection of alice's and a webhook that takes every
/// event: where the effects of a write show.
struct Outbox {
    acme: String,
    globex: String,
    connector: ConnectorRecord,
    connection: ConnectionRecord,
    webhook: WebhookRecord,
}

impl Outbox {
    async fn make(store: &dyn Store) -> Outbox {
        let (acme, globex, connector, _) = two_tenants(store).await;
        let connection = owned_connection(&acme, &connector.id, "alice");
        store.insert_connection(&connection).await.unwrap();
        let webhook = webhook_record(&acme, None);
        store.insert_webhook(&webhook).await.unwrap();
        Outbox { acme, globex, connector, connection, webhook }
    }

    /// A new connection of alice's, not stored.
    fn new_connection(&self) -> ConnectionRecord {
        owned_connection(&self.acme, &self.connector.id, "alice")
    }

    /// An event `kind` of the tenant about `connection`, at `at`.
    fn event(&self, kind: &str, connection: &ConnectionRecord, at: i64) -> EventRecord {
        event_record(&self.acme, kind, &connection.id, at)
    }
}

/// Writes `events` with an update of `connection` (which must exist).
async fn write_events(store: &dyn Store, connection: &ConnectionRecord, events: &[EventRecord]) {
    let written = store.update_connection_with(connection, Effects { events, ..Effects::NONE }).await.unwrap();
    assert!(written, "connection {} is missing", connection.id);
}

/// Events that write only events.
fn events_only(events: &[EventRecord]) -> Effects<'_> {
    Effects { events, ..Effects::NONE }
}

async fn event_ids(store: &dyn Store, tenant_id: &str) -> Vec<String> {
    store.export_events(tenant_id).await.unwrap().into_iter().map(|event| event.id).collect()
}

/// A webhook's deliveries, newest first.
async fn deliveries(store: &dyn Store, tenant_id: &str, webhook_id: &str) -> Vec<DeliveryRecord> {
    store.list_deliveries(tenant_id, webhook_id, None, 1_000).await.unwrap().items
}

/// The ids of what `holder` claims at `now`, for a while, sorted.
async fn claim(store: &dyn Store, holder: &str, now: i64) -> Vec<String> {
    let jobs = store.claim_deliveries(holder, now, now + 100, 100).await.unwrap();
    let mut ids: Vec<String> = jobs.into_iter().map(|job| job.delivery.id).collect();
    ids.sort();
    ids
}

fn sorted(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort();
    ids
}

fn attempt(at: i64, status: Option<u16>, error: Option<&str>, next: AttemptNext) -> Attempt {
    Attempt { at, status, error: error.map(str::to_owned), next }
}

fn delivered(at: i64) -> Attempt {
    attempt(at, Some(204), None, AttemptNext::Delivered)
}

/// `delivery` after `attempts` attempts, the last of which was `last`: in `state`, next due at
/// `next_attempt_at` (the time of the last attempt when it is over).
fn tried(
    delivery: &DeliveryRecord,
    state: DeliveryState,
    attempts: u32,
    next_attempt_at: i64,
    last: &Attempt,
) -> DeliveryRecord {
    DeliveryRecord {
        state,
        attempts,
        next_attempt_at,
        last_status: last.status,
        last_error: last.error.clone(),
        last_attempt_at: Some(last.at),
        ..delivery.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Effects: with their write, or not at all.

pub async fn a_connection_whose_session_cannot_be_claimed_is_not_made_and_writes_no_event(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let now = now_millis();
    let session = session_record(&o.acme, "alice");
    store.insert_connect_session(&session, &key_hash(1)).await.unwrap();

    // The first connection claims it, with its event.
    let first = o.new_connection();
    let created = o.event("connection.created", &first, now);
    let claiming = Effects { claim_session: Some((&session.id, now)), ..events_only(std::slice::from_ref(&created)) };
    store.insert_connection_with(&first, claiming).await.unwrap();
    let claimed = ConnectSessionRecord { connection_id: Some(first.id.clone()), ..session.clone() };
    assert_eq!(store.connect_session(&o.acme, &session.id).await.unwrap(), Some(claimed.clone()));
    assert_eq!(event_ids(store, &o.acme).await, [created.id.as_str()]);

    let expiring = ConnectSessionRecord { expires_at: now + 10, ..session_record(&o.acme, "alice") };
    store.insert_connect_session(&expiring, &key_hash(2)).await.unwrap();
    let theirs = session_record(&o.globex, "alice");
    store.insert_connect_session(&theirs, &key_hash(3)).await.unwrap();
    let missing = new_id();
    for (what, session_id, at) in [
        ("made its connection already", session.id.as_str(), now + 1),
        ("expired at the claim time", expiring.id.as_str(), now + 10),
        ("long expired", expiring.id.as_str(), now + 600_000),
        ("another tenant's", theirs.id.as_str(), now),
        ("missing", missing.as_str(), now),
    ] {
        let refused = o.new_connection();
        let event = o.event("connection.created", &refused, at);
        let effects = Effects {
            events: std::slice::from_ref(&event),
            claim_session: Some((session_id, at)),
            complete_session: Some((session_id, at)),
        };
        let error = store.insert_connection_with(&refused, effects).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{what}: {error:?}");
        assert_eq!(store.connection(&o.acme, &refused.id).await.unwrap(), None, "{what}: no connection");
        assert_eq!(event_ids(store, &o.acme).await, [created.id.as_str()], "{what}: no event");
    }
    assert_eq!(deliveries(store, &o.acme, &o.webhook.id).await, [pending_delivery(&created, &o.webhook)]);
    assert_eq!(store.delivery_queue().await.unwrap().pending, 1);
    assert!(store.export_events(&o.globex).await.unwrap().is_empty());
    // The sessions are as they were: neither claimed nor completed.
    assert_eq!(store.connect_session(&o.acme, &session.id).await.unwrap(), Some(claimed));
    assert_eq!(store.connect_session(&o.acme, &expiring.id).await.unwrap(), Some(expiring.clone()));
    assert_eq!(store.connect_session(&o.globex, &theirs.id).await.unwrap(), Some(theirs));

    // Until it expires, a session is claimed.
    let last = o.new_connection();
    let claiming = Effects { claim_session: Some((&expiring.id, now + 9)), ..Effects::NONE };
    store.insert_connection_with(&last, claiming).await.unwrap();
    let stored = store.connect_session(&o.acme, &expiring.id).await.unwrap().unwrap();
    assert_eq!(stored.connection_id, Some(last.id));
}

pub async fn a_write_to_a_missing_connection_has_no_effects(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let now = now_millis();
    let session = session_record(&o.acme, "alice");
    store.insert_connect_session(&session, &key_hash(1)).await.unwrap();
    let globex_connector = store.list_connectors(&o.globex, None, 1).await.unwrap().items.remove(0);
    let globex_connection = owned_connection(&o.globex, &globex_connector.id, "alice");
    store.insert_connection(&globex_connection).await.unwrap();

    let never_stored = o.new_connection();
    let globex_named_by_acme = ConnectionRecord { tenant_id: o.acme.clone(), ..globex_connection.clone() };
    for record in [never_stored, globex_named_by_acme] {
        let event = o.event("connection.updated", &record, now);
        let effects = Effects {
            events: std::slice::from_ref(&event),
            claim_session: Some((&session.id, now)),
            complete_session: Some((&session.id, now)),
        };
        let (tenant, id) = (record.tenant_id.as_str(), record.id.as_str());
        assert!(!store.update_connection_with(&record, effects).await.unwrap());
        let status = ConnectionStatus::Connected;
        assert!(!store.set_connection_tokens_with(tenant, id, None, None, status, None, effects).await.unwrap());
        assert!(!store.delete_connection_with(tenant, id, effects).await.unwrap());
    }
    assert!(event_ids(store, &o.acme).await.is_empty());
    assert!(event_ids(store, &o.globex).await.is_empty());
    assert_eq!(store.delivery_queue().await.unwrap(), DeliveryQueue::default());
    assert_eq!(store.connect_session(&o.acme, &session.id).await.unwrap(), Some(session), "not claimed, not completed");
    assert_eq!(store.connection(&o.globex, &globex_connection.id).await.unwrap(), Some(globex_connection));
}

pub async fn each_write_writes_its_events_and_a_delete_removes_the_row(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let now = now_millis();
    let record = o.new_connection();
    let created = [o.event("connection.created", &record, now), o.event("connect_session.completed", &record, now)];
    store.insert_connection_with(&record, events_only(&created)).await.unwrap();
    let updated = [o.event("connection.updated", &record, now + 1)];
    let renamed = ConnectionRecord { display_name: "renamed".to_owned(), ..record.clone() };
    assert!(store.update_connection_with(&renamed, events_only(&updated)).await.unwrap());
    let reauthorized = [o.event("connection.reauthorized", &record, now + 2)];
    let tokens = SealedBytes(awkward_bytes(5));
    let status = ConnectionStatus::Connected;
    let effects = events_only(&reauthorized);
    assert!(
        store
            .set_connection_tokens_with(&o.acme, &record.id, Some(&tokens), None, status, None, effects)
            .await
            .unwrap()
    );
    let deleted = [o.event("connection.deleted", &record, now + 3)];
    assert!(store.delete_connection_with(&o.acme, &record.id, events_only(&deleted)).await.unwrap());

    assert_eq!(store.connection(&o.acme, &record.id).await.unwrap(), None, "the row is gone");
    let events: Vec<EventRecord> = [created.as_slice(), &updated, &reauthorized, &deleted].concat();
    assert_eq!(store.export_events(&o.acme).await.unwrap(), events, "each as it was written, by id");
    let mut expected: Vec<DeliveryRecord> = events.iter().map(|event| pending_delivery(event, &o.webhook)).collect();
    expected.reverse();
    assert_eq!(deliveries(store, &o.acme, &o.webhook.id).await, expected, "newest first");
    // They go out in order, the connection gone or not: one key, the earliest first.
    let jobs = store.claim_deliveries("sender", now + 3, now + 100, 100).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((&jobs[0].delivery, &jobs[0].payload), (expected.last().unwrap(), &created[0].payload));
    assert!(!store.delete_connection_with(&o.acme, &record.id, events_only(&deleted)).await.unwrap());
    assert_eq!(store.export_events(&o.acme).await.unwrap().len(), events.len(), "deleted once, one event");
}

pub async fn completing_a_session_sets_its_completion_once(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let now = now_millis();

    // Claimed and completed by one insert (a connection that needs no sign-in).
    let at_once = session_record(&o.acme, "alice");
    store.insert_connect_session(&at_once, &key_hash(1)).await.unwrap();
    let record = o.new_connection();
    let effects = Effects {
        claim_session: Some((&at_once.id, now)),
        complete_session: Some((&at_once.id, now)),
        ..Effects::NONE
    };
    store.insert_connection_with(&record, effects).await.unwrap();
    let completed =
        ConnectSessionRecord { connection_id: Some(record.id.clone()), completed_at: Some(now), ..at_once.clone() };
    assert_eq!(store.connect_session(&o.acme, &at_once.id).await.unwrap(), Some(completed.clone()));
    assert_eq!(store.connect_session_of(&o.acme, &record.id).await.unwrap(), Some(completed.clone()));
    let again = Effects { complete_session: Some((&at_once.id, now + 5)), ..Effects::NONE };
    assert!(store.update_connection_with(&record, again).await.unwrap());
    assert_eq!(store.connect_session(&o.acme, &at_once.id).await.unwrap(), Some(completed), "completed once");

    // Claimed by the insert, completed when the sign-in ends (its tokens are set).
    let signing_in = session_record(&o.acme, "alice");
    store.insert_connect_session(&signing_in, &key_hash(2)).await.unwrap();
    let pending = ConnectionRecord { status: ConnectionStatus::Pending, ..o.new_connection() };
    store
        .insert_connection_with(&pending, Effects { claim_session: Some((&signing_in.id, now)), ..Effects::NONE })
        .await
        .unwrap();
    let claimed = ConnectSessionRecord { connection_id: Some(pending.id.clone()), ..signing_in.clone() };
    assert_eq!(store.connect_session(&o.acme, &signing_in.id).await.unwrap(), Some(claimed.clone()));
    let status = ConnectionStatus::Connected;
    for at in [now + 7, now + 8] {
        let completing = Effects { complete_session: Some((&signing_in.id, at)), ..Effects::NONE };
        let tokens = SealedBytes(awkward_bytes(3));
        assert!(
            store
                .set_connection_tokens_with(&o.acme, &pending.id, Some(&tokens), None, status, None, completing)
                .await
                .unwrap()
        );
    }
    let completed = ConnectSessionRecord { completed_at: Some(now + 7), ..claimed };
    assert_eq!(store.connect_session(&o.acme, &signing_in.id).await.unwrap(), Some(completed.clone()));
    assert_eq!(store.connect_session_of(&o.acme, &pending.id).await.unwrap(), Some(completed));
}

pub async fn a_cascade_writes_one_event_per_deleted_connection(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let now = now_millis();
    let doomed = connector_record(&o.acme);
    store.insert_connector(&doomed).await.unwrap();
    let mut going = Vec::new();
    for owner in ["alice", "bob", "carol"] {
        let record = owned_connection(&o.acme, &doomed.id, owner);
        store.insert_connection(&record).await.unwrap();
        going.push(record.id);
    }
    let asked = Mutex::new(Vec::new());
    let deleted = |record: &ConnectionRecord| {
        asked.lock().unwrap().push(record.id.clone());
        Some(event_record(&record.tenant_id, "connection.deleted", &record.id, now))
    };

    assert_eq!(
        store.delete_connector_with(&o.acme, &doomed.id, false, &deleted).await.unwrap(),
        DeleteConnector::InUse { connections: 3 }
    );
    assert!(event_ids(store, &o.acme).await.is_empty(), "nothing deleted, no event");

    assert_eq!(
        store.delete_connector_with(&o.acme, &doomed.id, true, &deleted).await.unwrap(),
        DeleteConnector::Deleted { connections: 3 }
    );
    assert_eq!(sorted(asked.lock().unwrap().clone()), sorted(going.clone()), "asked once about each");
    let events = store.export_events(&o.acme).await.unwrap();
    let keys = sorted(events.iter().map(|event| event.ordering_key.clone()));
    assert_eq!(keys, sorted(going), "one event about each deleted connection");
    assert!(events.iter().all(|event| event.kind == "connection.deleted"));
    let expected = sorted(events.iter().map(|event| pending_delivery(event, &o.webhook).id));
    let listed = deliveries(store, &o.acme, &o.webhook.id).await;
    assert_eq!(sorted(listed.into_iter().map(|delivery| delivery.id)), expected);
    assert_eq!(store.connection(&o.acme, &o.connection.id).await.unwrap(), Some(o.connection.clone()), "kept");

    // No event for a connection the function gives none for; none for an unused connector.
    let quiet = connector_record(&o.acme);
    store.insert_connector(&quiet).await.unwrap();
    store.insert_connection(&connection_record(&o.acme, &quiet.id)).await.unwrap();
    assert_eq!(
        store.delete_connector_with(&o.acme, &quiet.id, true, &|_| None).await.unwrap(),
        DeleteConnector::Deleted { connections: 1 }
    );
    let unused = connector_record(&o.acme);
    store.insert_connector(&unused).await.unwrap();
    asked.lock().unwrap().clear();
    assert_eq!(
        store.delete_connector_with(&o.acme, &unused.id, false, &deleted).await.unwrap(),
        DeleteConnector::Deleted { connections: 0 }
    );
    assert!(asked.lock().unwrap().is_empty());
    assert_eq!(store.export_events(&o.acme).await.unwrap(), events);
}

// ---------------------------------------------------------------------------------------------
// Fan-out.

pub async fn an_event_goes_to_each_enabled_webhook_of_its_tenant_that_takes_its_kind(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, connector, _) = two_tenants(store).await;
    let takes = |events: Option<&[&str]>| webhook_record(&acme, events);
    let every = takes(None);
    let created_only = takes(Some(&["connection.created"]));
    let several = takes(Some(&["connection.deleted", "connection.created", "connection.updated"]));
    let updated_only = takes(Some(&["connection.updated"]));
    // Kinds that contain the name, or begin it: not the kind.
    let lookalikes = takes(Some(&["connection.create", "connection.created.v2", "xconnection.created"]));
    let nothing = takes(Some(&[]));
    let disabled = WebhookRecord { enabled: false, ..takes(None) };
    let theirs = webhook_record(&globex, None);
    let webhooks = [&every, &created_only, &several, &updated_only, &lookalikes, &nothing, &disabled, &theirs];
    for webhook in webhooks {
        store.insert_webhook(webhook).await.unwrap();
    }

    let record = connection_record(&acme, &connector.id);
    let created = event_record(&acme, "connection.created", &record.id, 1_000);
    store.insert_connection_with(&record, events_only(std::slice::from_ref(&created))).await.unwrap();
    let updated = event_record(&acme, "connection.updated", &record.id, 2_000);
    write_events(store, &record, std::slice::from_ref(&updated)).await;

    let expected = [
        (&every, vec![&updated, &created]),
        (&created_only, vec![&created]),
        (&several, vec![&updated, &created]),
        (&updated_only, vec![&updated]),
        (&lookalikes, vec![]),
        (&nothing, vec![]),
        (&disabled, vec![]),
    ];
    let mut all = Vec::new();
    for (webhook, events) in expected {
        let wanted: Vec<DeliveryRecord> = events.into_iter().map(|event| pending_delivery(event, webhook)).collect();
        assert_eq!(deliveries(store, &acme, &webhook.id).await, wanted, "{:?}", webhook.events);
        all.extend(wanted);
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.export_deliveries(&acme).await.unwrap(), all);
    assert!(all.iter().all(|delivery| delivery.id == format!("{}:{}", delivery.event_id, delivery.webhook_id)));
    assert!(deliveries(store, &globex, &theirs.id).await.is_empty(), "another tenant's webhook");
    assert!(store.export_deliveries(&globex).await.unwrap().is_empty());
    assert_eq!(store.delivery_queue().await.unwrap().pending, 6);
}

// ---------------------------------------------------------------------------------------------
// Claims and attempts.

pub async fn only_due_deliveries_are_claimed_and_a_claim_holds_until_it_runs_out(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let t = 1_000_000;
    let event = o.event("connection.updated", &o.connection, t);
    write_events(store, &o.connection, std::slice::from_ref(&event)).await;
    let delivery = pending_delivery(&event, &o.webhook);

    assert!(store.claim_deliveries("a", t - 1, t + 100, 10).await.unwrap().is_empty(), "not due yet");
    let jobs = store.claim_deliveries("a", t, t + 100, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.delivery, delivery);
    assert_eq!((&job.url, &job.secrets, &job.payload), (&o.webhook.url, &o.webhook.secrets, &event.payload));
    assert_eq!(job.event_created_at, t);

    for (holder, now) in [("a", t + 1), ("b", t + 1), ("b", t + 100)] {
        assert!(claim(store, holder, now).await.is_empty(), "{holder} at {now}: a holds it until t + 100");
    }
    assert_eq!(claim(store, "b", t + 101).await, [delivery.id.as_str()], "a's claim ran out: b takes it");
    assert!(claim(store, "c", t + 150).await.is_empty(), "b holds it now");
    assert!(!store.record_attempt(&delivery.id, "a", &delivered(t + 150)).await.unwrap(), "a lost it");
    assert_eq!(deliveries(store, &o.acme, &o.webhook.id).await, std::slice::from_ref(&delivery), "and changed nothing");
    assert!(store.record_attempt(&delivery.id, "b", &delivered(t + 150)).await.unwrap());
}

pub async fn per_webhook_and_key_only_the_earliest_pending_delivery_is_claimable(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let second = webhook_record(&o.acme, None);
    store.insert_webhook(&second).await.unwrap();
    let (w1, w2) = (&o.webhook, &second);
    let (k, l) = (&o.connection, o.new_connection());
    store.insert_connection(&l).await.unwrap();
    let t = 1_000_000;
    // Two events of k, both due at once; one of l, written last.
    let (k1, k2) = (o.event("connection.updated", k, t), o.event("connection.updated", k, t));
    write_events(store, k, &[k1.clone(), k2.clone()]).await;
    let l1 = o.event("connection.updated", &l, t);
    write_events(store, &l, std::slice::from_ref(&l1)).await;
    let id = |event: &EventRecord, webhook: &WebhookRecord| pending_delivery(event, webhook).id;

    let first = claim(store, "a", t).await;
    assert_eq!(first, sorted([id(&k1, w1), id(&k1, w2), id(&l1, w1), id(&l1, w2)]), "k2 waits for k1");
    // k1 is retried later at w1 and delivered at w2; l1 is given up at w1 and retried soon at w2.
    let retry = |at| attempt(t + 1, Some(503), Some("busy"), AttemptNext::RetryAt(at));
    assert!(store.record_attempt(&id(&k1, w1), "a", &retry(t + 1_000)).await.unwrap());
    assert!(store.record_attempt(&id(&k1, w2), "a", &delivered(t + 1)).await.unwrap());
    let give_up = attempt(t + 1, Some(410), None, AttemptNext::GiveUp);
    assert!(store.record_attempt(&id(&l1, w1), "a", &give_up).await.unwrap());
    assert!(store.record_attempt(&id(&l1, w2), "a", &retry(t + 5)).await.unwrap());

    // At w1, k2 is due but k1 is pending (not due, not claimed): k2 waits. At w2 it goes on,
    // and so does l1, another key.
    assert_eq!(claim(store, "b", t + 20).await, sorted([id(&k2, w2), id(&l1, w2)]));
    for (delivery, holder) in [(id(&k2, w2), "b"), (id(&l1, w2), "b")] {
        assert!(store.record_attempt(&delivery, holder, &delivered(t + 21)).await.unwrap());
    }
    assert!(claim(store, "c", t + 999).await.is_empty());
    assert_eq!(claim(store, "c", t + 1_000).await, [id(&k1, w1)], "k1 again; k2 still waits");
    assert!(claim(store, "d", t + 1_050).await.is_empty(), "k1 is claimed: k2 still waits");
    assert!(store.record_attempt(&id(&k1, w1), "c", &give_up).await.unwrap());
    assert_eq!(claim(store, "d", t + 1_200).await, [id(&k2, w1)], "k1 given up: k2 goes");
}

pub async fn a_claim_takes_no_more_than_its_limit_earliest_due_first(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let t = 1_000_000;
    // Five keys, written in this order, due in the reverse order.
    let mut due_first = Vec::new();
    for n in 0..5 {
        let record = o.new_connection();
        let event = o.event("connection.created", &record, t + 10 - n);
        store.insert_connection_with(&record, events_only(std::slice::from_ref(&event))).await.unwrap();
        due_first.insert(0, pending_delivery(&event, &o.webhook).id);
    }
    let mut claimed = Vec::new();
    for expected in [2, 2, 1, 0] {
        let jobs = store.claim_deliveries("a", t + 10, t + 100, 2).await.unwrap();
        assert_eq!(jobs.len(), expected, "{claimed:?}");
        let mut ids: Vec<String> = jobs.into_iter().map(|job| job.delivery.id).collect();
        ids.sort_by_key(|id| due_first.iter().position(|due| due == id));
        claimed.extend(ids);
    }
    assert_eq!(claimed, due_first);
}

pub async fn an_attempt_is_recorded_only_by_the_holder_of_its_claim(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let t = 1_000_000;
    let event = o.event("connection.updated", &o.connection, t);
    write_events(store, &o.connection, std::slice::from_ref(&event)).await;
    let delivery = pending_delivery(&event, &o.webhook);
    let unchanged =
        async || assert_eq!(deliveries(store, &o.acme, &o.webhook.id).await, std::slice::from_ref(&delivery));

    assert!(!store.record_attempt(&delivery.id, "a", &delivered(t)).await.unwrap(), "not claimed");
    unchanged().await;
    assert_eq!(claim(store, "a", t).await, [delivery.id.as_str()]);
    for outcome in [AttemptNext::Delivered, AttemptNext::RetryAt(t + 5), AttemptNext::GiveUp] {
        let wrong = attempt(t + 1, Some(500), Some("not mine"), outcome);
        assert!(!store.record_attempt(&delivery.id, "b", &wrong).await.unwrap(), "{outcome:?} by b");
        unchanged().await;
    }
    assert!(claim(store, "b", t + 50).await.is_empty(), "still a's");
    assert!(!store.record_attempt(&new_id(), "a", &delivered(t + 2)).await.unwrap(), "no such delivery");
    assert!(store.record_attempt(&delivery.id, "a", &delivered(t + 2)).await.unwrap());
    assert!(!store.record_attempt(&delivery.id, "a", &delivered(t + 3)).await.unwrap(), "recorded once");
    let stored = deliveries(store, &o.acme, &o.webhook.id).await.remove(0);
    assert_eq!((stored.attempts, stored.last_attempt_at), (1, Some(t + 2)));
}

pub async fn each_outcome_of_an_attempt_sets_the_delivery_and_releases_its_claim(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let t = 1_000_000;
    let mut made = Vec::new();
    for _ in 0..3 {
        let record = o.new_connection();
        let event = o.event("connection.created", &record, t);
        store.insert_connection_with(&record, events_only(std::slice::from_ref(&event))).await.unwrap();
        made.push(pending_delivery(&event, &o.webhook));
    }
    let [ok, retried, given_up] = made.try_into().unwrap();
    let stored = async |delivery: &DeliveryRecord| {
        let all = store.export_deliveries(&o.acme).await.unwrap();
        all.into_iter().find(|stored| stored.id == delivery.id).unwrap()
    };
    // A claim that would run for long.
    assert_eq!(store.claim_deliveries("a", t, t + 100_000, 10).await.unwrap().len(), 3);

    // A failure first, then delivered: the error goes.
    let failed = attempt(t + 1, Some(502), Some("bad gateway"), AttemptNext::RetryAt(t + 10));
    assert!(store.record_attempt(&ok.id, "a", &failed).await.unwrap());
    assert_eq!(claim(store, "b", t + 10).await, [ok.id.as_str()], "released at once, and due again at t + 10");
    assert!(store.record_attempt(&ok.id, "b", &delivered(t + 11)).await.unwrap());
    let expected = tried(&ok, DeliveryState::Delivered, 2, t + 11, &delivered(t + 11));
    assert_eq!((expected.last_status, expected.last_error.as_deref()), (Some(204), None));
    assert_eq!(stored(&ok).await, expected);

    let busy = attempt(t + 2, Some(503), Some("busy"), AttemptNext::RetryAt(t + 60));
    assert!(store.record_attempt(&retried.id, "a", &busy).await.unwrap());
    assert_eq!(stored(&retried).await, tried(&retried, DeliveryState::Pending, 1, t + 60, &busy));

    let refused = attempt(t + 3, None, Some("connection refused"), AttemptNext::GiveUp);
    assert!(store.record_attempt(&given_up.id, "a", &refused).await.unwrap());
    assert_eq!(stored(&given_up).await, tried(&given_up, DeliveryState::Failed, 1, t + 3, &refused));

    // Released, the retried one is b's to claim when it is due (long before a's claim would have
    // run out); the delivered and the given up ones are never claimed again.
    assert!(claim(store, "b", t + 59).await.is_empty());
    assert_eq!(claim(store, "b", t + 60).await, [retried.id.as_str()]);
    assert!(!store.record_attempt(&retried.id, "a", &delivered(t + 61)).await.unwrap(), "a's claim is gone");
    let timed_out = attempt(t + 61, None, Some("timed out"), AttemptNext::GiveUp);
    assert!(store.record_attempt(&retried.id, "b", &timed_out).await.unwrap());
    let expected = tried(&retried, DeliveryState::Failed, 2, t + 61, &timed_out);
    assert_eq!((expected.last_status, expected.last_error.as_deref()), (None, Some("timed out")), "the 503 goes");
    assert_eq!(stored(&retried).await, expected);
    assert!(claim(store, "c", t + 10_000_000).await.is_empty());
    assert_eq!(store.delivery_queue().await.unwrap(), DeliveryQueue::default());
}

pub async fn the_delivery_queue_counts_pending_ones_with_the_oldest_event_and_the_next_due(ctx: &Ctx) {
    let store = ctx.store();
    assert_eq!(
        store.delivery_queue().await.unwrap(),
        DeliveryQueue { pending: 0, oldest_pending: None, next_due: None }
    );
    let o = Outbox::make(store).await;
    let second = webhook_record(&o.acme, None);
    store.insert_webhook(&second).await.unwrap();
    let globex_connector = store.list_connectors(&o.globex, None, 1).await.unwrap().items.remove(0);
    let theirs = connection_record(&o.globex, &globex_connector.id);
    store.insert_connection(&theirs).await.unwrap();
    let globex_webhook = webhook_record(&o.globex, None);
    store.insert_webhook(&globex_webhook).await.unwrap();
    let t = 1_000_000;
    let ours = o.event("connection.updated", &o.connection, t);
    write_events(store, &o.connection, std::slice::from_ref(&ours)).await;
    let other = event_record(&o.globex, "connection.updated", &theirs.id, t + 10);
    write_events(store, &theirs, std::slice::from_ref(&other)).await;
    let queue = |pending, oldest_pending, next_due| DeliveryQueue { pending, oldest_pending, next_due };
    assert_eq!(store.delivery_queue().await.unwrap(), queue(3, Some(t), Some(t)), "every tenant's");

    let id = |event: &EventRecord, webhook: &WebhookRecord| pending_delivery(event, webhook).id;
    assert_eq!(store.claim_deliveries("a", t + 10, t + 20, 10).await.unwrap().len(), 3);
    assert_eq!(store.delivery_queue().await.unwrap(), queue(3, Some(t), Some(t)), "claimed ones wait still");
    let retry = |at| attempt(t + 11, Some(500), None, AttemptNext::RetryAt(at));
    assert!(store.record_attempt(&id(&ours, &o.webhook), "a", &delivered(t + 11)).await.unwrap());
    assert!(store.record_attempt(&id(&ours, &second), "a", &retry(t + 500)).await.unwrap());
    assert!(store.record_attempt(&id(&other, &globex_webhook), "a", &retry(t + 300)).await.unwrap());
    assert_eq!(store.delivery_queue().await.unwrap(), queue(2, Some(t), Some(t + 300)));

    assert_eq!(claim(store, "b", t + 300).await, [id(&other, &globex_webhook)]);
    assert!(store.record_attempt(&id(&other, &globex_webhook), "b", &delivered(t + 301)).await.unwrap());
    assert_eq!(store.delivery_queue().await.unwrap(), queue(1, Some(t), Some(t + 500)));
    assert_eq!(claim(store, "b", t + 500).await, [id(&ours, &second)]);
    let give_up = attempt(t + 501, None, Some("gone"), AttemptNext::GiveUp);
    assert!(store.record_attempt(&id(&ours, &second), "b", &give_up).await.unwrap());
    assert_eq!(store.delivery_queue().await.unwrap(), DeliveryQueue::default());
}

// ---------------------------------------------------------------------------------------------
// Webhooks and their delivery logs.

pub async fn a_webhook_round_trips_exactly(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    let every = webhook_record(&acme, None);
    // Kinds in the order given.
    let some = WebhookRecord {
        enabled: false,
        ..webhook_record(&acme, Some(&["connection.deleted", "connection.created", "connect_session.completed"]))
    };
    let none = WebhookRecord { secrets: SealedBytes(vec![0]), ..webhook_record(&acme, Some(&[])) };
    for record in [&every, &some, &none] {
        store.insert_webhook(record).await.unwrap();
        let stored = store.webhook(&acme, &record.id).await.unwrap().unwrap();
        assert_eq!(&stored, record);
        assert_eq!(stored.secrets.0, record.secrets.0, "byte for byte");
        assert_eq!(store.webhook(&globex, &record.id).await.unwrap(), None, "another tenant's webhook is missing");
    }
    assert_eq!(store.webhook(&acme, &every.id).await.unwrap().unwrap().secrets.0, awkward_bytes(11));
    assert_eq!(store.webhook(&acme, &new_id()).await.unwrap(), None);

    let error = store.insert_webhook(&every).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let error = store.insert_webhook(&webhook_record(&new_id(), None)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(store.list_webhooks(&acme, None, 10).await.unwrap().items.len(), 3);
}

pub async fn webhooks_page_by_id_within_their_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    let mut webhooks = Vec::new();
    for _ in 0..5 {
        // Interleaved with globex's, which the pages skip.
        store.insert_webhook(&webhook_record(&globex, None)).await.unwrap();
        let webhook = webhook_record(&acme, Some(&["connection.created"]));
        store.insert_webhook(&webhook).await.unwrap();
        webhooks.push(webhook);
    }
    let listed = pages(async |after| store.list_webhooks(&acme, after.as_deref(), 2).await.unwrap()).await;
    assert_eq!(listed.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(listed.concat(), webhooks);
    assert_eq!(store.list_webhooks(&acme, Some(&webhooks[3].id), 10).await.unwrap().items, webhooks[4..]);
    assert!(store.list_webhooks(&new_id(), None, 10).await.unwrap().items.is_empty());
}

pub async fn update_webhook_changes_what_it_says(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let original = o.webhook.clone();
    let rewritten = WebhookRecord {
        url: "https://other.example/portico".to_owned(),
        events: Some(vec!["connection.deleted".to_owned()]),
        enabled: false,
        secrets: SealedBytes(awkward_bytes(12)),
        updated_at: original.updated_at + 1_000,
        // Not the caller's to change.
        created_by: "operator".to_owned(),
        created_at: 1,
        ..original.clone()
    };
    assert!(store.update_webhook(&rewritten).await.unwrap());
    let updated =
        WebhookRecord { created_by: original.created_by.clone(), created_at: original.created_at, ..rewritten.clone() };
    assert_eq!(store.webhook(&o.acme, &original.id).await.unwrap(), Some(updated.clone()));

    // What it takes now: nothing while it is disabled, then deletions only.
    let t = 1_000_000;
    let ignored = o.event("connection.deleted", &o.connection, t);
    write_events(store, &o.connection, std::slice::from_ref(&ignored)).await;
    let enabled = WebhookRecord { enabled: true, updated_at: updated.updated_at + 1, ..updated.clone() };
    assert!(store.update_webhook(&enabled).await.unwrap());
    let (other_kind, taken) =
        (o.event("connection.updated", &o.connection, t + 1), o.event("connection.deleted", &o.connection, t + 2));
    write_events(store, &o.connection, &[other_kind, taken.clone()]).await;
    assert_eq!(deliveries(store, &o.acme, &original.id).await, [pending_delivery(&taken, &enabled)]);
    let jobs = store.claim_deliveries("a", t + 2, t + 10, 10).await.unwrap();
    assert_eq!((&jobs[0].url, &jobs[0].secrets), (&enabled.url, &enabled.secrets), "attempts use the new url");

    // Every kind again.
    let every = WebhookRecord { events: None, ..enabled.clone() };
    assert!(store.update_webhook(&every).await.unwrap());
    assert_eq!(store.webhook(&o.acme, &original.id).await.unwrap(), Some(every.clone()));

    let hijack =
        WebhookRecord { tenant_id: o.globex.clone(), url: "https://evil.example/".to_owned(), ..every.clone() };
    assert!(!store.update_webhook(&hijack).await.unwrap(), "another tenant's webhook is missing");
    assert!(!store.update_webhook(&WebhookRecord { id: new_id(), ..every.clone() }).await.unwrap());
    assert_eq!(store.webhook(&o.acme, &original.id).await.unwrap(), Some(every));
}

pub async fn a_webhook_is_deleted_once_with_its_deliveries(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let kept = webhook_record(&o.acme, None);
    store.insert_webhook(&kept).await.unwrap();
    let t = 1_000_000;
    let events = [o.event("connection.updated", &o.connection, t), o.event("connection.updated", &o.connection, t)];
    write_events(store, &o.connection, &events).await;
    // One of them claimed, one tried: they go all the same.
    assert_eq!(store.claim_deliveries("a", t, t + 100, 10).await.unwrap().len(), 2);
    let retry = attempt(t + 1, Some(500), None, AttemptNext::RetryAt(t + 50));
    assert!(store.record_attempt(&pending_delivery(&events[0], &o.webhook).id, "a", &retry).await.unwrap());

    assert!(!store.delete_webhook(&o.globex, &o.webhook.id).await.unwrap(), "another tenant's webhook is missing");
    assert_eq!(deliveries(store, &o.acme, &o.webhook.id).await.len(), 2);
    assert!(store.delete_webhook(&o.acme, &o.webhook.id).await.unwrap());
    assert!(!store.delete_webhook(&o.acme, &o.webhook.id).await.unwrap(), "deleted already");
    assert_eq!(store.webhook(&o.acme, &o.webhook.id).await.unwrap(), None);
    assert!(deliveries(store, &o.acme, &o.webhook.id).await.is_empty());
    let remaining: Vec<DeliveryRecord> = events.iter().map(|event| pending_delivery(event, &kept)).collect();
    assert_eq!(store.export_deliveries(&o.acme).await.unwrap(), remaining, "the other webhook's stay");
    assert_eq!(store.delivery_queue().await.unwrap().pending, 2);
    assert_eq!(store.export_events(&o.acme).await.unwrap(), events, "the events stay");
}

pub async fn deliveries_are_listed_newest_first_by_webhook_within_their_tenant(ctx: &Ctx) {
    let store = ctx.store();
    let o = Outbox::make(store).await;
    let other = webhook_record(&o.acme, None);
    store.insert_webhook(&other).await.unwrap();
    let t = 1_000_000;
    let mut newest_first = Vec::new();
    for n in 0..5 {
        let event = o.event("connection.updated", &o.connection, t + n);
        write_events(store, &o.connection, std::slice::from_ref(&event)).await;
        newest_first.insert(0, pending_delivery(&event, &o.webhook));
    }
    let listed =
        pages(async |before| store.list_deliveries(&o.acme, &o.webhook.id, before.as_deref(), 2).await.unwrap()).await;
    assert_eq!(listed.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(listed.concat(), newest_first);
    let page = store.list_deliveries(&o.acme, &o.webhook.id, None, 2).await.unwrap();
    assert_eq!(page.next.as_deref(), Some(newest_first[1].id.as_str()), "the cursor is the last one shown");
    let older = store.list_deliveries(&o.acme, &o.webhook.id, Some(&newest_first[2].id), 10).await.unwrap();
    assert_eq!(older.items, newest_first[3..]);
    assert_eq!(older.next, None);
    assert!(store.list_deliveries(&o.globex, &o.webhook.id, None, 10).await.unwrap().items.is_empty());
    assert_eq!(deliveries(store, &o.acme, &other.id).await.len(), 5, "each webhook its own");
}

// ---------------------------------------------------------------------------------------------
// Connect sessions.

pub async fn a_connect_session_round_trips_and_is_found_by_token_and_by_its_connection(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    let now = now_millis();
    let full = session_record(&acme, "alice");
    let bare = ConnectSessionRecord { connector_ids: None, return_url: None, ..session_record(&acme, "bob") };
    let used = ConnectSessionRecord {
        connector_ids: Some(Vec::new()),
        connection_id: Some(new_id()),
        completed_at: Some(now + 5),
        ..session_record(&acme, "carol")
    };
    for (n, record) in [&full, &bare, &used].into_iter().enumerate() {
        store.insert_connect_session(record, &key_hash(n)).await.unwrap();
        assert_eq!(store.connect_session(&acme, &record.id).await.unwrap().as_ref(), Some(record));
        assert_eq!(store.connect_session_by_token(&key_hash(n)).await.unwrap().as_ref(), Some(record));
        assert_eq!(store.connect_session(&globex, &record.id).await.unwrap(), None, "another tenant's is missing");
    }
    assert_eq!(store.connect_session(&acme, &new_id()).await.unwrap(), None);
    assert_eq!(store.connect_session_by_token(&key_hash(9)).await.unwrap(), None);

    let made = used.connection_id.as_deref().unwrap();
    assert_eq!(store.connect_session_of(&acme, made).await.unwrap(), Some(used.clone()));
    assert_eq!(store.connect_session_of(&globex, made).await.unwrap(), None, "another tenant's is missing");
    assert_eq!(store.connect_session_of(&acme, &new_id()).await.unwrap(), None);
}

pub async fn a_connect_session_token_hash_and_id_are_unique(ctx: &Ctx) {
    let store = ctx.store();
    let (acme, globex, ..) = two_tenants(store).await;
    let session = session_record(&acme, "alice");
    store.insert_connect_session(&session, &key_hash(1)).await.unwrap();
    let refusals = [
        ("the same token hash", session_record(&acme, "bob"), key_hash(1)),
        ("the same hash in another tenant", session_record(&globex, "bob"), key_hash(1)),
        ("the same id", session.clone(), key_hash(2)),
        ("no such tenant", session_record(&new_id(), "bob"), key_hash(3)),
    ];
    for (what, record, hash) in refusals {
        let error = store.insert_connect_session(&record, &hash).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{what}: {error:?}");
    }
    assert_eq!(store.connect_session_by_token(&key_hash(1)).await.unwrap(), Some(session));
    for hash in [key_hash(2), key_hash(3)] {
        assert_eq!(store.connect_session_by_token(&hash).await.unwrap(), None);
    }
}
