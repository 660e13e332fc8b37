//! The audit trail: every use of a credential (a call through a connection, an operation, a
//! test, a token renewal) and every change (connectors, connections, keys, shares, members,
//! webhooks, connect sessions, sign-ins), by whom, with what outcome. Never a secret, a query
//! value, a header or a body: a proxied call is recorded by its method and the path *template*
//! of the operation it matched, never its path.
//!
//! Off the hot path: a call hands its [`Entry`] to a bounded queue and goes on. It never waits
//! for the store and is never refused for the trail's sake: when the queue is full the entry is
//! dropped, counted (`portico_audit_events_dropped_total`) and the log says so, once a minute at
//! most. A writer task takes what the queue holds every [`FLUSH_EVERY`] and appends it in one
//! transaction; calls alike taken in one flush (same connection, principal, operation or method
//! and path template, outcome) are one event with their count and mean latency. Changes go through the same queue, but a change that finds it full is written at
//! once instead: no change is ever dropped. [`App::close_audit`] flushes the queue on a clean
//! shutdown; after `kill -9` at most the events of the last flush interval (under a second) are
//! lost. Events older than the retention are deleted by the writer, once an hour.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use portico_runtime::{Outcome, PreparedConnection};
use portico_store::{AuditQuery, AuditRecord, Millis, Page};
use tokio::sync::mpsc;

use crate::access::{self, Action};
use crate::error::Result;
use crate::{Actor, App, Principal};

/// How often the writer appends what the queue holds.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How often events past the retention are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Most events the sweep deletes in one statement.
const SWEEP_BATCH: u32 = 10_000;

/// What the trail records, and for how long.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Calls through connections are recorded (changes always are).
    pub calls: bool,
    /// Most events waiting for the writer.
    pub queue: usize,
    /// Events older than this are deleted; `None`: kept for ever.
    pub retention: Option<Duration>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { calls: true, queue: 65_536, retention: Some(Duration::from_secs(90 * 24 * 3600)) }
    }
}

/// A call through a connection, as the trail records it.
#[derive(Clone, Copy)]
pub enum CallKind<'a> {
    /// A proxied request: its method, and its path below the connection (matched to an
    /// operation's template by the writer; the path itself is never written).
    Proxy {
        method: &'a Method,
        path: &'a str,
    },
    Operation(&'a str),
    Test(Option<&'a str>),
}

/// One event waiting for the writer: what is cheap to take on the call path; the writer
/// renders it.
pub(crate) struct Entry {
    at: Millis,
    principal: By,
    action: &'static str,
    subject: Subject,
    outcome: Ending,
    latency: Option<Duration>,
}

/// Who did something: a principal's actor, a principal named by its reference (a sign-in
/// completed for whoever started it), or Portico itself (a token renewal).
pub(crate) enum By {
    Actor(Actor),
    Named(String),
    System,
}

enum Subject {
    Call {
        prepared: Arc<PreparedConnection>,
        method: Option<Method>,
        path: Option<Box<str>>,
        operation: Option<Box<str>>,
    },
    Other {
        tenant_id: Arc<str>,
        connection_id: Option<String>,
        connector_id: Option<String>,
        target: Option<String>,
    },
}

/// An outcome: the backend's answer (or its absence), or how a change went.
enum Ending {
    Call(Outcome),
    Ok,
    Failed(String),
}

/// What happened to a tenant's thing, for [`App::audit_change`].
#[derive(Debug, Default)]
pub struct Detail<'a> {
    pub connection_id: Option<&'a str>,
    pub connector_id: Option<&'a str>,
    /// A key, member, webhook, share's end user or connect session.
    pub target: Option<&'a str>,
    /// Why it failed, when it did (never a secret).
    pub failure: Option<&'a str>,
}

/// The queue, its writer and their counts. One per [`App`].
pub struct AuditLog {
    settings: AuditSettings,
    sender: mpsc::Sender<Entry>,
    receiver: Mutex<Option<mpsc::Receiver<Entry>>>,
    writer: Mutex<Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>>,
    written: AtomicU64,
    dropped: AtomicU64,
    failed_writes: AtomicU64,
    /// When a drop was last logged (milliseconds since the epoch).
    drop_logged_at: AtomicU64,
}

impl AuditLog {
    pub(crate) fn new(settings: AuditSettings) -> AuditLog {
        let (sender, receiver) = mpsc::channel(settings.queue.max(1));
        AuditLog {
            settings,
            sender,
            receiver: Mutex::new(Some(receiver)),
            writer: Mutex::new(None),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed_writes: AtomicU64::new(0),
            drop_logged_at: AtomicU64::new(0),
        }
    }

    /// Queues an event of the data plane, or drops and counts it when the queue is full.
    fn offer(&self, entry: Entry) {
        if self.sender.try_send(entry).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let now = u64::try_from(portico_store::now_millis()).unwrap_or(0);
            let last = self.drop_logged_at.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= 60_000
                && self.drop_logged_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            {
                tracing::warn!(
                    dropped,
                    queue = self.settings.queue,
                    "the audit queue is full: events of calls are being dropped (the store cannot keep up)"
                );
            }
        }
    }

    /// The Prometheus text of the trail's counts.
    pub fn render(&self) -> String {
        let waiting = self.settings.queue.saturating_sub(self.sender.capacity());
        format!(
            "# HELP portico_audit_events_written_total Audit events written to the store.\n\
             # TYPE portico_audit_events_written_total counter\n\
             portico_audit_events_written_total {}\n\
             # HELP portico_audit_events_dropped_total Audit events of calls dropped because the queue was full.\n\
             # TYPE portico_audit_events_dropped_total counter\n\
             portico_audit_events_dropped_total {}\n\
             # HELP portico_audit_write_failures_total Batches of audit events the store refused (retried).\n\
             # TYPE portico_audit_write_failures_total counter\n\
             portico_audit_write_failures_total {}\n\
             # HELP portico_audit_queue_depth Audit events waiting for the writer.\n\
             # TYPE portico_audit_queue_depth gauge\n\
             portico_audit_queue_depth {waiting}\n\
             # HELP portico_audit_queue_capacity Most audit events that may wait for the writer.\n\
             # TYPE portico_audit_queue_capacity gauge\n\
             portico_audit_queue_capacity {}\n",
            self.written.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.failed_writes.load(Ordering::Relaxed),
            self.settings.queue,
        )
    }
}

impl Actor {
    /// How records and logs name the actor: `key:<id>`, `member:<id>`, `operator` or
    /// `connect_session:<id>`.
    pub fn reference(&self) -> String {
        match self {
            Actor::Key(id) => format!("key:{id}"),
            Actor::Person { member_id, .. } => format!("member:{member_id}"),
            Actor::Operator => "operator".to_owned(),
            Actor::ConnectSession(id) => format!("connect_session:{id}"),
        }
    }
}

impl Entry {
    /// The record, its id made of its time and `sequence` (its rank among the events of its
    /// millisecond, so that they list in the order they happened).
    fn into_record(self, instance: &str, sequence: u16) -> AuditRecord {
        let principal = match &self.principal {
            By::Actor(actor) => actor.reference(),
            By::Named(name) => name.clone(),
            By::System => "system".to_owned(),
        };
        let outcome = match self.outcome {
            Ending::Call(Outcome::Status(status)) => status.to_string(),
            Ending::Call(Outcome::Refused) => "refused".to_owned(),
            Ending::Call(Outcome::Timeout) => "timeout".to_owned(),
            Ending::Call(Outcome::Unreachable) => "unreachable".to_owned(),
            Ending::Ok => "ok".to_owned(),
            Ending::Failed(reason) => format!("error: {reason}"),
        };
        let mut record = AuditRecord {
            id: portico_store::new_id_at(self.at, sequence),
            tenant_id: String::new(),
            at: self.at,
            principal,
            action: self.action.to_owned(),
            connection_id: None,
            connector_id: None,
            target: None,
            operation: None,
            method: None,
            path: None,
            outcome,
            count: 1,
            latency_us: self.latency.map(|l| i64::try_from(l.as_micros()).unwrap_or(i64::MAX)),
            instance: instance.to_owned(),
        };
        match self.subject {
            Subject::Call { prepared, method, path, operation } => {
                record.tenant_id.clone_from(&prepared.tenant_id);
                record.connection_id = Some(prepared.connection_id.clone());
                record.connector_id = Some(prepared.connector_id.clone());
                let matched = match (&method, &path, &operation) {
                    (_, _, Some(id)) => prepared.connector.operation(id),
                    (Some(method), Some(path), None) => prepared.connector.operation_at(method.as_str(), path),
                    _ => None,
                };
                record.method = method.map(|m| m.as_str().to_owned()).or_else(|| matched.map(|op| op.method.clone()));
                record.path = matched.map(|op| op.path.clone());
                // An operation id the connector does not have is the caller's text: not kept.
                record.operation = matched.map(|op| op.id.clone());
            }
            Subject::Other { tenant_id, connection_id, connector_id, target } => {
                record.tenant_id = tenant_id.to_string();
                record.connection_id = connection_id;
                record.connector_id = connector_id;
                record.target = target;
            }
        }
        record
    }
}

/// What makes calls alike: the same connection (prepared once), principal, kind, method, path
/// (as called: the template is resolved once per group), operation and outcome.
#[derive(PartialEq, Eq, Hash)]
struct CallKey {
    prepared: usize,
    actor: Actor,
    action: &'static str,
    method: Option<Method>,
    path: Option<Box<str>>,
    operation: Option<Box<str>>,
    outcome: Outcome,
}

/// What a record of calls says: tenant, principal, action, connection, method, path template,
/// outcome.
type Said = (String, String, String, Option<String>, Option<String>, Option<String>, String);

/// The events of one flush: calls alike are one record with their count and mean latency, so
/// that the store writes a row per kind of call rather than per call.
#[derive(Default)]
struct Rollup {
    records: Vec<AuditRecord>,
    /// Each record's summed latency, in microseconds.
    latency: Vec<i64>,
    by_call: std::collections::HashMap<CallKey, usize>,
    /// Records of calls by what they say (calls to two paths of one template are alike).
    by_record: std::collections::HashMap<Said, usize>,
}

impl Rollup {
    fn add(&mut self, entry: Entry, instance: &str, last: &mut (Millis, u16)) {
        let key = match (&entry.subject, &entry.principal, &entry.outcome) {
            (Subject::Call { prepared, method, path, operation }, By::Actor(actor), Ending::Call(outcome)) => {
                Some(CallKey {
                    prepared: Arc::as_ptr(prepared) as usize,
                    actor: actor.clone(),
                    action: entry.action,
                    method: method.clone(),
                    path: path.clone(),
                    operation: operation.clone(),
                    outcome: *outcome,
                })
            }
            _ => None,
        };
        let latency = entry.latency.map_or(0, |l| i64::try_from(l.as_micros()).unwrap_or(i64::MAX));
        if let Some(key) = &key
            && let Some(&at) = self.by_call.get(key)
        {
            self.merge(at, latency);
            return;
        }
        let sequence = if entry.at == last.0 { last.1.saturating_add(1) } else { 0 };
        *last = (entry.at, sequence);
        let record = entry.into_record(instance, sequence);
        if let Some(key) = key {
            let said = (
                record.tenant_id.clone(),
                record.principal.clone(),
                record.action.clone(),
                record.connection_id.clone(),
                record.method.clone(),
                record.path.clone(),
                record.outcome.clone(),
            );
            if let Some(&at) = self.by_record.get(&said) {
                self.by_call.insert(key, at);
                self.merge(at, latency);
                return;
            }
            self.by_record.insert(said, self.records.len());
            self.by_call.insert(key, self.records.len());
        }
        self.records.push(record);
        self.latency.push(latency);
    }

    fn merge(&mut self, at: usize, latency: i64) {
        self.records[at].count += 1;
        self.latency[at] = self.latency[at].saturating_add(latency);
    }

    /// The records, each with its calls' mean latency.
    fn finish(self) -> Vec<AuditRecord> {
        let mut records = self.records;
        for (record, total) in records.iter_mut().zip(self.latency) {
            if record.count > 1 && record.latency_us.is_some() {
                record.latency_us = Some(total / record.count);
            }
        }
        records
    }
}

impl App {
    /// Records a call through `prepared` by `principal` that ended with `outcome` after
    /// `elapsed`, unless calls are not audited. Takes no lock and never waits.
    pub fn audit_call(
        &self,
        principal: &Principal,
        prepared: &Arc<PreparedConnection>,
        call: CallKind<'_>,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        if !self.audit.settings.calls {
            return;
        }
        let (action, method, path, operation) = match call {
            CallKind::Proxy { method, path } => ("call.proxy", Some(method.clone()), Some(path.into()), None),
            CallKind::Operation(id) => ("call.operation", None, None, Some(id.into())),
            CallKind::Test(id) => ("connection.test", None, None, id.map(Into::into)),
        };
        self.audit.offer(Entry {
            at: portico_store::now_millis(),
            principal: By::Actor(principal.actor.clone()),
            action,
            subject: Subject::Call { prepared: prepared.clone(), method, path, operation },
            outcome: Ending::Call(outcome),
            latency: Some(elapsed),
        });
    }

    /// Records a change (or a sign-in, a renewal, a re-authorization) in `tenant_id` by
    /// `principal`. Never dropped: written at once when the queue is full.
    pub(crate) async fn audit_change(
        &self,
        tenant_id: &str,
        principal: &Principal,
        action: &'static str,
        change: Detail<'_>,
    ) {
        self.audit(tenant_id, By::Actor(principal.actor.clone()), action, change, None).await;
    }

    /// [`App::audit_change`] by anyone, with how long it took when that matters.
    pub(crate) async fn audit(
        &self,
        tenant_id: &str,
        by: By,
        action: &'static str,
        change: Detail<'_>,
        latency: Option<Duration>,
    ) {
        let entry = Entry {
            at: portico_store::now_millis(),
            principal: by,
            action,
            subject: Subject::Other {
                tenant_id: tenant_id.into(),
                connection_id: change.connection_id.map(str::to_owned),
                connector_id: change.connector_id.map(str::to_owned),
                target: change.target.map(str::to_owned),
            },
            outcome: change.failure.map_or(Ending::Ok, |reason| Ending::Failed(portico_oauth::brief(reason))),
            latency,
        };
        if let Err(mpsc::error::TrySendError::Full(entry) | mpsc::error::TrySendError::Closed(entry)) =
            self.audit.sender.try_send(entry)
        {
            let record = entry.into_record(&self.oauth.instance, 0);
            match self.store.append_audit(std::slice::from_ref(&record)).await {
                Ok(()) => {
                    self.audit.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    self.audit.failed_writes.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, action, "cannot write an audit event");
                }
            }
        }
    }

    /// Starts the writer: every [`FLUSH_EVERY`] it appends what the queue holds, and once an
    /// hour it deletes what is past the retention. Once per process.
    pub fn start_audit(self: &Arc<App>) {
        let Some(mut receiver) = self.audit.receiver.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let app = self.clone();
        let task = tokio::spawn(async move {
            let mut pending: Vec<AuditRecord> = Vec::new();
            let mut next_sweep = Instant::now();
            let mut closing = false;
            // The time of the last event taken, and its rank in that millisecond.
            let mut last = (0, 0u16);
            loop {
                if !closing {
                    tokio::select! {
                        () = tokio::time::sleep(FLUSH_EVERY) => {}
                        _ = &mut stopped => closing = true,
                    }
                }
                let mut rollup = Rollup::default();
                while pending.len() + rollup.records.len() < app.audit.settings.queue.max(1) {
                    match receiver.try_recv() {
                        Ok(entry) => rollup.add(entry, &app.oauth.instance, &mut last),
                        Err(_) => break,
                    }
                }
                pending.extend(rollup.finish());
                if !pending.is_empty() {
                    match app.store.append_audit(&pending).await {
                        Ok(()) => {
                            let events: i64 = pending.iter().map(|record| record.count).sum();
                            app.audit.written.fetch_add(u64::try_from(events).unwrap_or(0), Ordering::Relaxed);
                            pending.clear();
                        }
                        Err(error) => {
                            app.audit.failed_writes.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%error, events = pending.len(), "cannot write audit events; will retry");
                            if closing {
                                tracing::error!(events = pending.len(), "audit events lost at shutdown");
                                return;
                            }
                        }
                    }
                }
                if closing && pending.is_empty() && receiver.is_empty() {
                    return;
                }
                if !closing && Instant::now() >= next_sweep {
                    next_sweep = Instant::now() + SWEEP_EVERY;
                    app.sweep_audit().await;
                }
            }
        });
        *self.audit.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some((stop, task));
    }

    /// Writes what the queue holds and stops the writer: a clean shutdown loses no event.
    pub async fn close_audit(&self) {
        let writer = self.audit.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((stop, task)) = writer {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Deletes every tenant's events past the retention.
    async fn sweep_audit(&self) {
        let Some(retention) = self.audit.settings.retention else { return };
        let before = portico_store::now_millis() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
        let tenants = match self.store.list_tenants().await {
            Ok(tenants) => tenants,
            Err(error) => {
                tracing::warn!(%error, "cannot sweep the audit trail");
                return;
            }
        };
        for tenant in tenants {
            loop {
                match self.store.delete_audit_before(&tenant.id, before, SWEEP_BATCH).await {
                    Ok(deleted) if deleted >= u64::from(SWEEP_BATCH) => continue,
                    Ok(deleted) => {
                        if deleted > 0 {
                            tracing::info!(tenant = %tenant.name, deleted, "audit events past the retention deleted");
                        }
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot sweep the audit trail");
                        return;
                    }
                }
            }
        }
    }

    /// The tenant's audit events that match `query` (newest first unless it says otherwise).
    pub async fn audit_events(
        &self,
        principal: &Principal,
        query: &AuditQuery<'_>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AuditRecord>> {
        access::require(principal, Action::ReadAudit)?;
        let page = self.store.list_audit(&principal.tenant_id, query, cursor, limit + 1).await?;
        Ok(crate::connectors::cut(page, limit, |record| &record.id))
    }
}
