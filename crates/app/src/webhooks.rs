//! Webhooks: an admin registers URLs that learn of every change to the tenant's connections;
//! the events wait in the store's outbox (written with the change), and a sender in every
//! instance claims due deliveries — one attempt at a time across instances —, signs them as
//! Standard Webhooks says, and retries with exponential back-off until the retry period is over.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use portico_outbound::{AddressPolicy, HttpClient};
use portico_secrets::SecretString;
use portico_secrets::webhook::{generate_secret, signature_header};
use portico_store::{Attempt, AttemptNext, DeliveryJob, DeliveryRecord, Millis, Page, SealedBytes, WebhookRecord};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::access::{self, Action};
use crate::audit::Detail;
use crate::connectors::cut;
use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::{App, Principal};

/// How long a rotated-out secret still signs.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Deliveries one sender attempts at once.
const BATCH: u32 = 16;

/// When deliveries are retried and given up, and how long an attempt may take.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The first retry after a failed attempt; each next waits twice as long…
    pub retry_initial: Duration,
    /// …up to this.
    pub retry_max_interval: Duration,
    /// Given up this long after the event.
    pub retry_for: Duration,
    /// An attempt that has no answer after this failed.
    pub timeout: Duration,
    /// How often a sender looks for due deliveries when nothing woke it and none is due sooner
    /// (deliveries of other instances' events, claims of instances that died).
    pub poll: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            retry_initial: Duration::from_secs(5),
            retry_max_interval: Duration::from_secs(3600),
            retry_for: Duration::from_secs(86_400),
            timeout: Duration::from_secs(10),
            poll: Duration::from_secs(5),
        }
    }
}

impl DeliverySettings {
    /// After `attempts` failed attempts (at least one), at `now`, of an event of `event_at`.
    fn next(&self, attempts: u32, now: Millis, event_at: Millis) -> AttemptNext {
        if now.saturating_sub(event_at) >= millis(self.retry_for) {
            return AttemptNext::GiveUp;
        }
        let doubled = self.retry_initial.saturating_mul(1u32 << attempts.saturating_sub(1).min(30));
        AttemptNext::RetryAt(now + millis(doubled.min(self.retry_max_interval)))
    }
}

fn millis(duration: Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

/// A webhook's signing secrets as sealed: the current one first.
#[derive(Serialize, Deserialize)]
struct Secrets(Vec<Secret>);

#[derive(Serialize, Deserialize)]
struct Secret {
    secret: String,
    /// A rotated-out secret signs until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<Millis>,
}

/// A webhook just made (or whose secret was just rotated): the secret, shown this once.
pub struct WebhookWithSecret {
    pub record: WebhookRecord,
    pub secret: SecretString,
}

/// A webhook's changes: what is `None` stays.
#[derive(Debug, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    /// `Some(None)`: every kind.
    pub events: Option<Option<Vec<String>>>,
    pub enabled: Option<bool>,
}

/// What the senders did, for `/metrics`.
#[derive(Default)]
pub struct DeliveryMetrics {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    given_up: AtomicU64,
    pending: AtomicU64,
    /// Milliseconds since the epoch of the oldest pending delivery's event; 0: none.
    oldest_pending: AtomicI64,
}

impl DeliveryMetrics {
    fn count(&self, next: AttemptNext) {
        let counter = match next {
            AttemptNext::Delivered => &self.delivered,
            AttemptNext::RetryAt(_) => &self.failed_attempts,
            AttemptNext::GiveUp => &self.given_up,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text of the deliveries.
    pub fn render(&self, now: Millis) -> String {
        let oldest = self.oldest_pending.load(Ordering::Relaxed);
        let age = if oldest == 0 { 0.0 } else { (now - oldest).max(0) as f64 / 1000.0 };
        format!(
            "# HELP portico_webhook_deliveries_total Webhook delivery attempts by outcome.\n\
             # TYPE portico_webhook_deliveries_total counter\n\
             portico_webhook_deliveries_total{{outcome=\"delivered\"}} {}\n\
             portico_webhook_deliveries_total{{outcome=\"failed\"}} {}\n\
             portico_webhook_deliveries_total{{outcome=\"given_up\"}} {}\n\
             # HELP portico_webhook_queue_depth Deliveries waiting to be delivered.\n\
             # TYPE portico_webhook_queue_depth gauge\n\
             portico_webhook_queue_depth {}\n\
             # HELP portico_webhook_oldest_pending_seconds How long the oldest waiting delivery's event has waited.\n\
             # TYPE portico_webhook_oldest_pending_seconds gauge\n\
             portico_webhook_oldest_pending_seconds {age:.3}\n",
            self.delivered.load(Ordering::Relaxed),
            self.failed_attempts.load(Ordering::Relaxed),
            self.given_up.load(Ordering::Relaxed),
            self.pending.load(Ordering::Relaxed),
        )
    }
}

/// The event kinds asked for, checked.
fn event_kinds(events: Option<Vec<String>>) -> Result<Option<Vec<String>>> {
    let Some(events) = events else { return Ok(None) };
    if events.is_empty() {
        return Err(Error::invalid_field("invalid webhook", "events", "name at least one event, or leave it out"));
    }
    let mut kinds = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let Some(kind) = EventKind::parse(event) else {
            let known: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
            return Err(Error::invalid_field(
                "invalid webhook",
                format!("events[{i}]"),
                format!("is not an event; one of {}", known.join(", ")),
            ));
        };
        if !kinds.contains(&kind.as_str().to_owned()) {
            kinds.push(kind.as_str().to_owned());
        }
    }
    Ok(Some(kinds))
}

/// A webhook URL, checked: absolute http(s), no credentials, and not on an address the rule
/// refuses (names are checked when they are resolved, at each attempt).
fn webhook_url(text: &str, addresses: AddressPolicy) -> Result<Url> {
    let bad = |message: &str| Error::invalid_field("invalid webhook", "url", message);
    let url = Url::parse(text.trim()).map_err(|_| bad("must be an absolute http or https URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad("must be an absolute http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials: the signature proves who sends"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    if addresses.check_url(&url).is_err() {
        return Err(bad(
            "is on a loopback, private or otherwise non-public address, which this server does not send to \
             (see --allow-private-backends)",
        ));
    }
    Ok(url)
}

/// The HTTP client of the senders, under the address rule; it follows no redirect (a redirect
/// is not a delivery).
pub(crate) fn client(settings: &DeliverySettings, addresses: AddressPolicy) -> HttpClient {
    let builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("Portico-Webhooks/", env!("CARGO_PKG_VERSION")));
    HttpClient::new(builder, addresses)
        .unwrap_or_else(|error| panic!("cannot build the webhook senders' HTTP client: {error}"))
}

impl App {
    fn seal_webhook_secrets(&self, webhook_id: &str, secrets: &Secrets) -> SealedBytes {
        let plaintext = portico_secrets::Zeroizing::new(serde_json::to_vec(secrets).unwrap_or_default());
        self.seal_value(portico_store::SealedColumn::WebhookSecrets, webhook_id, &plaintext)
    }

    async fn open_webhook_secrets(&self, record: &WebhookRecord) -> Result<Secrets> {
        let plaintext =
            self.open_value(portico_store::SealedColumn::WebhookSecrets, &record.id, &record.secrets).await?;
        serde_json::from_slice(&plaintext).map_err(|_| {
            tracing::error!(webhook = %record.id, "a webhook's secrets are not readable");
            Error::Internal
        })
    }

    pub async fn create_webhook(
        &self,
        principal: &Principal,
        url: &str,
        events: Option<Vec<String>>,
    ) -> Result<WebhookWithSecret> {
        access::require(principal, Action::ManageWebhooks)?;
        let url = webhook_url(url, self.webhooks.http.policy())?;
        let events = event_kinds(events)?;
        let id = format!("wh_{}", portico_store::new_id());
        let secret = generate_secret();
        let now = portico_store::now_millis();
        let record = WebhookRecord {
            secrets: self
                .seal_webhook_secrets(&id, &Secrets(vec![Secret { secret: secret.expose().to_owned(), until: None }])),
            id,
            tenant_id: principal.tenant_id.to_string(),
            url: url.into(),
            events,
            enabled: true,
            created_by: principal.reference(),
            created_at: now,
            updated_at: now,
        };
        self.store.insert_webhook(&record).await?;
        tracing::info!(webhook = %record.id, principal = %principal.reference(), "webhook created");
        let change = Detail { target: Some(&record.id), ..Detail::default() };
        self.audit_change(&record.tenant_id, principal, "webhook.created", change).await;
        Ok(WebhookWithSecret { record, secret })
    }

    pub async fn list_webhooks(
        &self,
        principal: &Principal,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<WebhookRecord>> {
        access::require(principal, Action::ManageWebhooks)?;
        let page = self.store.list_webhooks(&principal.tenant_id, after, limit + 1).await?;
        Ok(cut(page, limit, |record| &record.id))
    }

    pub async fn webhook(&self, principal: &Principal, id: &str) -> Result<WebhookRecord> {
        access::require(principal, Action::ManageWebhooks)?;
        self.store.webhook(&principal.tenant_id, id).await?.ok_or(Error::NotFound("webhook"))
    }

    pub async fn update_webhook(
        &self,
        principal: &Principal,
        id: &str,
        changes: WebhookChanges,
    ) -> Result<WebhookRecord> {
        let mut record = self.webhook(principal, id).await?;
        if let Some(url) = changes.url {
            record.url = webhook_url(&url, self.webhooks.http.policy())?.into();
        }
        if let Some(events) = changes.events {
            record.events = event_kinds(events)?;
        }
        if let Some(enabled) = changes.enabled {
            record.enabled = enabled;
        }
        record.updated_at = portico_store::now_millis();
        if !self.store.update_webhook(&record).await? {
            return Err(Error::NotFound("webhook"));
        }
        tracing::info!(webhook = %id, principal = %principal.reference(), "webhook changed");
        let change = Detail { target: Some(id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "webhook.updated", change).await;
        Ok(record)
    }

    /// Deletes a webhook; what waited for it is not delivered.
    pub async fn delete_webhook(&self, principal: &Principal, id: &str) -> Result<()> {
        access::require(principal, Action::ManageWebhooks)?;
        if !self.store.delete_webhook(&principal.tenant_id, id).await? {
            return Err(Error::NotFound("webhook"));
        }
        tracing::info!(webhook = %id, principal = %principal.reference(), "webhook deleted");
        let change = Detail { target: Some(id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "webhook.deleted", change).await;
        Ok(())
    }

    /// A new signing secret; the one it replaces still signs for [`ROTATION_OVERLAP`], so that
    /// receivers may switch without losing a delivery.
    pub async fn rotate_webhook_secret(&self, principal: &Principal, id: &str) -> Result<WebhookWithSecret> {
        let mut record = self.webhook(principal, id).await?;
        let now = portico_store::now_millis();
        let Secrets(old) = self.open_webhook_secrets(&record).await?;
        let secret = generate_secret();
        let mut secrets = vec![Secret { secret: secret.expose().to_owned(), until: None }];
        let until = now + millis(ROTATION_OVERLAP);
        secrets.extend(
            old.into_iter()
                .filter(|s| s.until.is_none_or(|at| at > now))
                .map(|s| Secret { until: Some(s.until.map_or(until, |at| at.min(until))), ..s }),
        );
        record.secrets = self.seal_webhook_secrets(&record.id, &Secrets(secrets));
        record.updated_at = now;
        if !self.store.update_webhook(&record).await? {
            return Err(Error::NotFound("webhook"));
        }
        tracing::info!(webhook = %id, principal = %principal.reference(), "webhook secret rotated");
        let change = Detail { target: Some(id), ..Detail::default() };
        self.audit_change(&principal.tenant_id, principal, "webhook.secret_rotated", change).await;
        Ok(WebhookWithSecret { record, secret })
    }

    /// A webhook's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        principal: &Principal,
        webhook_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Page<DeliveryRecord>> {
        self.webhook(principal, webhook_id).await?;
        let page = self.store.list_deliveries(&principal.tenant_id, webhook_id, before, limit + 1).await?;
        Ok(cut(page, limit, |record| &record.id))
    }

    /// Wakes this instance's sender: events were just written.
    pub(crate) fn deliveries_due(&self) {
        self.webhooks.wake.notify_one();
    }

    /// Runs this instance's sender for as long as the process does: claims due deliveries,
    /// attempts them, records how they went. Pending deliveries left by a crash (or another
    /// instance) are claimed again once their claim runs out.
    pub fn send_webhooks(self: &Arc<App>) {
        let app = self.clone();
        self.oauth.background.spawn(async move {
            loop {
                let wait = match app.send_due().await {
                    Ok(Some(wait)) => wait,
                    Ok(None) => continue,
                    Err(error) => {
                        tracing::warn!(%error, "webhook deliveries could not be claimed");
                        app.webhooks.settings.poll
                    }
                };
                let _ = tokio::time::timeout(wait, app.webhooks.wake.notified()).await;
            }
        });
    }

    /// One round: the queue read, and when some delivery is due, the due ones claimed and
    /// attempted together. `None` when it attempted some (there may be more), else how long
    /// to wait for the next round (unless woken).
    async fn send_due(self: &Arc<App>) -> Result<Option<Duration>> {
        let settings = &self.webhooks.settings;
        let now = portico_store::now_millis();
        let queue = self.store.delivery_queue().await?;
        self.webhooks.metrics.pending.store(queue.pending, Ordering::Relaxed);
        self.webhooks.metrics.oldest_pending.store(queue.oldest_pending.unwrap_or(0), Ordering::Relaxed);
        let idle = match queue.next_due {
            Some(due) if due > now => Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(settings.poll),
            _ => settings.poll,
        };
        if queue.next_due.is_none_or(|due| due > now) {
            return Ok(Some(idle));
        }
        // A claim outlives the attempt: another instance takes the delivery only if this one
        // died meanwhile.
        let until = now + millis(settings.timeout) + 30_000;
        let jobs = self.store.claim_deliveries(&self.oauth.instance, now, until, BATCH).await?;
        if jobs.is_empty() {
            // Due, but each behind an earlier delivery of its connection or claimed elsewhere.
            return Ok(Some(idle));
        }
        let mut attempts = tokio::task::JoinSet::new();
        for job in jobs {
            let app = self.clone();
            attempts.spawn(async move { app.attempt(job).await });
        }
        while attempts.join_next().await.is_some() {}
        Ok(None)
    }

    /// Sends one delivery and records how it went.
    async fn attempt(&self, job: DeliveryJob) {
        let settings = &self.webhooks.settings;
        let delivery = &job.delivery;
        let signed_at = portico_store::now_millis();
        let outcome = match self.signed_request(&job, signed_at).await {
            Ok(request) => match request.send().await {
                Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
                Ok(response) => {
                    let status = response.status().as_u16();
                    (Some(status), Some(format!("the receiver answered {status}")))
                }
                Err(error) => (None, Some(sending_error(&error))),
            },
            Err(error) => (None, Some(error.to_string())),
        };
        let at = portico_store::now_millis();
        let next = match &outcome {
            (Some(_), None) => AttemptNext::Delivered,
            _ => settings.next(delivery.attempts + 1, at, job.event_created_at),
        };
        self.webhooks.metrics.count(next);
        match next {
            AttemptNext::Delivered => tracing::debug!(delivery = %delivery.id, "webhook delivered"),
            AttemptNext::RetryAt(_) => tracing::info!(delivery = %delivery.id, attempts = delivery.attempts + 1,
                error = outcome.1.as_deref().unwrap_or_default(), "webhook delivery failed; will retry"),
            AttemptNext::GiveUp => tracing::warn!(delivery = %delivery.id, attempts = delivery.attempts + 1,
                "webhook delivery given up after the retry period"),
        }
        let attempt = Attempt { at, status: outcome.0, error: outcome.1, next };
        match self.store.record_attempt(&delivery.id, &self.oauth.instance, &attempt).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery = %delivery.id, "a webhook delivery's claim ran out during its attempt")
            }
            Err(error) => tracing::warn!(delivery = %delivery.id, %error, "a webhook attempt could not be recorded"),
        }
    }

    /// The signed request of a delivery, signed at `now` by every secret that still signs.
    async fn signed_request(&self, job: &DeliveryJob, now: Millis) -> Result<reqwest::RequestBuilder> {
        let url = webhook_url(&job.url, self.webhooks.http.policy())?;
        let record = WebhookRecord {
            id: job.delivery.webhook_id.clone(),
            secrets: job.secrets.clone(),
            tenant_id: job.delivery.tenant_id.clone(),
            url: job.url.clone(),
            events: None,
            enabled: true,
            created_by: String::new(),
            created_at: 0,
            updated_at: 0,
        };
        let Secrets(secrets) = self.open_webhook_secrets(&record).await?;
        let signing: Vec<SecretString> = secrets
            .into_iter()
            .filter(|s| s.until.is_none_or(|until| until > now))
            .map(|s| SecretString::from(s.secret))
            .collect();
        let timestamp = now / 1000;
        let body = job.payload.as_bytes();
        let signature = signature_header(&signing, &job.delivery.event_id, timestamp, body);
        let request = self.webhooks.http.post(url.as_str()).map_err(|_| refused())?;
        Ok(request
            .header("content-type", "application/json")
            .header("webhook-id", &job.delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(job.payload.clone()))
    }
}

/// What a failed send is called in the delivery log: the kind of failure, never a URL's
/// secrets (webhook URLs carry none: credentials are refused).
fn sending_error(error: &reqwest::Error) -> String {
    if portico_outbound::is_refused(error) {
        refused().to_string()
    } else if error.is_timeout() {
        "the receiver did not answer in time".to_owned()
    } else if error.is_connect() {
        "the receiver could not be reached".to_owned()
    } else {
        "the request failed before an answer".to_owned()
    }
}

/// A receiver the address rule refused, before any connection.
fn refused() -> Error {
    Error::BackendNotAllowed(
        "the receiver is on a loopback, private or otherwise non-public address, which this server does not send to"
            .to_owned(),
    )
}

/// What `App` keeps for webhooks.
pub(crate) struct WebhookSupport {
    pub(crate) settings: DeliverySettings,
    /// Under the address rule, which also checks webhook URLs when they are given.
    pub(crate) http: HttpClient,
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) metrics: DeliveryMetrics,
}

impl WebhookSupport {
    pub(crate) fn new(settings: DeliverySettings, addresses: AddressPolicy) -> Self {
        WebhookSupport {
            http: client(&settings, addresses),
            settings,
            wake: tokio::sync::Notify::new(),
            metrics: DeliveryMetrics::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_the_maximum_and_give_up_after_the_period() {
        let settings = DeliverySettings {
            retry_initial: Duration::from_millis(1500),
            retry_max_interval: Duration::from_secs(5),
            retry_for: Duration::from_secs(60),
            ..DeliverySettings::default()
        };
        let waits: Vec<Millis> = (1..=5)
            .map(|attempts| match settings.next(attempts, 10_000, 10_000) {
                AttemptNext::RetryAt(at) => at - 10_000,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(waits, [1500, 3000, 5000, 5000, 5000]);
        assert_eq!(settings.next(1, 70_000, 10_000), AttemptNext::GiveUp);
        assert!(matches!(settings.next(40, 10_000, 10_000), AttemptNext::RetryAt(_)), "no overflow");
    }

    #[test]
    fn urls_must_be_public_http_without_credentials() {
        let public = AddressPolicy::public_only();
        assert!(webhook_url("https://hooks.example.com/portico", public).is_ok());
        for bad in [
            "ftp://hooks.example.com",
            "/relative",
            "https://user:pw@hooks.example.com/",
            "http://127.0.0.1:9000/",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://localhost:8080/",
            "http://198.18.0.1/",
            "http://[fe80::1]/",
            "https://hooks.example.com/#x",
        ] {
            assert!(matches!(webhook_url(bad, public), Err(Error::Invalid { .. })), "{bad}");
        }
        let private = AddressPolicy::allow_private();
        assert!(webhook_url("http://127.0.0.1:9000/", private).is_ok(), "allowed with --allow-private-backends");
    }

    #[test]
    fn event_kinds_are_known_ones() {
        assert_eq!(event_kinds(None).unwrap(), None);
        let kinds = event_kinds(Some(vec!["connection.created".into(), "connection.created".into()])).unwrap();
        assert_eq!(kinds, Some(vec!["connection.created".to_owned()]));
        assert!(matches!(event_kinds(Some(vec![])), Err(Error::Invalid { .. })));
        assert!(
            matches!(event_kinds(Some(vec!["connection.*".into()])), Err(Error::Invalid { errors, .. }) if errors[0].field == "events[0]")
        );
    }
}
