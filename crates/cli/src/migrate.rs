//! `portico migrate --from URL --to URL`: moves a whole store to another, typically the
//! embedded SQLite file of one machine to the PostgreSQL database that several instances share.
//!
//! What moves: settings (the master-key check), the data keys (wrapped by the master key, as
//! they are), tenants, API keys (their hashes, roles, end
//! users, scopes, expiries, revocations), members, connectors (definitions, warnings, sealed
//! OAuth client secrets), connections (owners, values, sealed secrets and tokens, statuses,
//! times), their shares, webhooks (sealed signing secrets), connect sessions (their token
//! hashes, so that a link handed out before the move still works), the outbox (events and
//! their deliveries, pending or not, with their attempts and times) and the sign-ins in
//! progress that have not expired. Nothing is opened or re-sealed: ids are kept, and sealed
//! values are bound to their row's id, so they open at the destination with the same master
//! key. Leases (held for seconds during a token renewal) and the claims of deliveries being
//! attempted are not moved: a pending delivery is the destination's to claim.
//!
//! Resumable: a record whose id is at the destination already is skipped, so running the
//! command again after an interruption completes the move. Checked: afterwards both stores are
//! read again and compared kind by kind, record by record and every sealed value byte for byte;
//! any difference is an error. Run it while no Portico uses either store.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use anyhow::{Context, bail};
use clap::Args;
use portico_secrets::MasterKey;
use portico_store::{
    ConnectionQuery, ConnectionRecord, ConnectorRecord, DeliveryRecord, EventRecord, MemberRecord, OAuthStateRecord,
    Page, SealedBytes, ShareRecord, Store, StoreError, StoredApiKey, StoredConnectSession, Tenant, WebhookRecord,
    now_millis,
};

/// Records read per query.
const PAGE: u32 = 200;
/// Differences shown before the rest are only counted.
const SHOWN_DIFFERENCES: usize = 20;

#[derive(Args)]
pub struct MigrateArgs {
    /// The store to read, e.g. sqlite://portico-data/portico.db
    #[arg(long)]
    from: String,
    /// The store to fill, e.g. postgres://portico@db.internal/portico (the database must exist;
    /// its schema is created)
    #[arg(long)]
    to: String,
}

/// What happened to one kind of record.
#[derive(Default, Clone, Copy)]
struct Tally {
    /// Records at the source (for sign-ins: those that had not expired).
    source: u64,
    copied: u64,
    /// Already at the destination, from an earlier run.
    present: u64,
}

const KINDS: [&str; 13] = [
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
];

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let (from, to) = (args.from.trim(), args.to.trim());
    if from == to {
        bail!("--from and --to name the same store");
    }
    if let Some(path) = sqlite_path(from)
        && !std::path::Path::new(&path).is_file()
    {
        bail!("there is no SQLite database at {path}");
    }
    let source =
        portico_store::open(from).await.with_context(|| format!("cannot open {}", portico_store::redact_url(from)))?;
    let destination =
        portico_store::open(to).await.with_context(|| format!("cannot open {}", portico_store::redact_url(to)))?;
    let (source, destination) = (source.as_ref(), destination.as_ref());

    let now = now_millis();
    let mut tallies: BTreeMap<&'static str, Tally> = KINDS.iter().map(|kind| (*kind, Tally::default())).collect();
    tallies.insert("settings", copy_settings(source, destination).await?);
    tallies.insert("data keys", copy_data_keys(source, destination).await?);
    copy_tenants(source, destination, &mut tallies).await?;
    let (sign_ins, expired) = copy_sign_ins(source, destination, now).await?;
    tallies.insert("sign-ins", sign_ins);

    let pending = source.delivery_queue().await?.pending;

    let check = verify(source, destination, now).await?;
    println!("Moved the store at {} to {}.", portico_store::redact_url(from), portico_store::redact_url(to));
    println!();
    println!("  {:<16} {:>13} {:>8} {:>14}", "", "at the source", "copied", "already there");
    for kind in KINDS {
        let tally = tallies[kind];
        let note = match kind {
            "sign-ins" if expired > 0 => format!("  ({expired} expired, not moved)"),
            "deliveries" if pending > 0 => format!("  ({pending} pending)"),
            _ => String::new(),
        };
        println!("  {kind:<16} {:>13} {:>8} {:>14}{note}", tally.source, tally.copied, tally.present);
    }
    println!();
    if !check.differences.is_empty() {
        for difference in check.differences.iter().take(SHOWN_DIFFERENCES) {
            eprintln!("  difference: {difference}");
        }
        if check.differences.len() > SHOWN_DIFFERENCES {
            eprintln!("  … and {} more", check.differences.len() - SHOWN_DIFFERENCES);
        }
        bail!(
            "the destination does not match the source: {} difference(s); nothing was deleted, fix the \
             destination (or start again with an empty database) and run the command again",
            check.differences.len()
        );
    }
    let mut counts = String::new();
    for kind in KINDS {
        let _ = write!(counts, "{}{} {kind}", if counts.is_empty() { "" } else { ", " }, check.counts[kind]);
    }
    println!("Checked: both stores hold {counts};");
    println!("every record is identical, and its {} sealed values byte for byte.", check.sealed);
    Ok(())
}

/// The file of a `sqlite:` URL, to tell a mistyped path from an empty store (opening would
/// create it).
fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| path.to_owned())
}

/// The data keys as they are: wrapped by the master key, which the destination shares.
async fn copy_data_keys(source: &dyn Store, destination: &dyn Store) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for key in source.data_keys().await? {
        tally.source += 1;
        if destination.import_data_key(&key).await? {
            tally.copied += 1;
        } else if destination.data_keys().await?.iter().any(|there| there.id == key.id) {
            tally.present += 1;
        } else {
            bail!(
                "the destination has a current data key of its own (a Portico has run on it): data key {} cannot \
                 be copied; move to an empty database",
                key.id
            );
        }
    }
    Ok(tally)
}

async fn copy_settings(source: &dyn Store, destination: &dyn Store) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for (name, value) in source.list_settings().await? {
        tally.source += 1;
        if destination.setting(&name).await?.is_some() {
            tally.present += 1;
        } else {
            destination.init_setting(&name, &value).await?;
            tally.copied += 1;
        }
        // Checked now, before anything else moves: a destination that a Portico has used has a
        // master-key check of its own (sealed anew, so never the same bytes), and a tenant
        // `default` of its own; one sealed with another master key would end up with secrets
        // that no key opens.
        let Some(stored) = destination.setting(&name).await? else { bail!("setting {name} vanished") };
        if stored != value {
            let (ours, theirs) = (MasterKey::key_id_of(&value), MasterKey::key_id_of(&stored));
            match (ours, theirs) {
                (Some(ours), Some(theirs)) if ours != theirs => bail!(
                    "the destination's setting {name} differs from the source's: its secrets are sealed with \
                     another master key (id {theirs}, not {ours}); move into a database that no Portico has used"
                ),
                _ => bail!(
                    "the destination's setting {name} differs from the source's: a Portico has used the \
                     destination already; move into a database that no Portico has used"
                ),
            }
        }
    }
    Ok(tally)
}

/// Tenants, and with each its API keys, members, connectors, connections, shares, webhooks,
/// connect sessions and outbox.
async fn copy_tenants(
    source: &dyn Store,
    destination: &dyn Store,
    tallies: &mut BTreeMap<&'static str, Tally>,
) -> anyhow::Result<()> {
    let present: BTreeMap<String, String> =
        destination.list_tenants().await?.into_iter().map(|tenant| (tenant.id, tenant.name)).collect();
    for tenant in source.list_tenants().await? {
        let tenants = tallies.entry("tenants").or_default();
        tenants.source += 1;
        if present.contains_key(&tenant.id) {
            tenants.present += 1;
        } else {
            match destination.import_tenant(&tenant).await {
                Ok(()) => tenants.copied += 1,
                Err(StoreError::Conflict(_)) => bail!(
                    "the destination has a tenant named '{}' already, with another id: was a Portico started on \
                     it? Move into a database that no Portico has used",
                    tenant.name
                ),
                Err(other) => return Err(other.into()),
            }
        }
        let tenant = tenant.id.as_str();

        let mut keys = source.export_api_keys(tenant).await?.into_iter();
        copy_each(
            tallies.entry("API keys").or_default(),
            async || Ok(keys.next()),
            async |key| destination.import_api_key(key).await,
            async |key| Ok(destination.api_key(tenant, &key.record.id).await?.is_some()),
            |key| format!("API key {}", key.record.id),
        )
        .await?;

        let mut members = Pages::default();
        copy_each(
            tallies.entry("members").or_default(),
            async || members.next(async |after| source.list_members(tenant, after.as_deref(), PAGE).await).await,
            async |member| destination.insert_member(member).await,
            async |member| Ok(destination.member(tenant, &member.id).await?.is_some()),
            |member| format!("member {}", member.id),
        )
        .await?;

        // Most records are new: each is inserted, and looked for only when that conflicts.
        let mut connectors = Pages::default();
        copy_each(
            tallies.entry("connectors").or_default(),
            async || connectors.next(async |after| source.list_connectors(tenant, after.as_deref(), PAGE).await).await,
            async |record| destination.insert_connector(record).await,
            async |record| Ok(destination.connector(tenant, &record.id).await?.is_some()),
            |record| format!("connector {}", record.id),
        )
        .await?;

        let mut connections = Pages::default();
        let every = ConnectionQuery::default();
        copy_each(
            tallies.entry("connections").or_default(),
            async || {
                connections
                    .next(async |after| source.list_connections(tenant, &every, after.as_deref(), PAGE).await)
                    .await
            },
            async |record| destination.import_connection(record).await,
            async |record| Ok(destination.connection(tenant, &record.id).await?.is_some()),
            |record| format!("connection {}", record.id),
        )
        .await?;

        let mut shares = source.export_shares(tenant).await?.into_iter();
        copy_each(
            tallies.entry("shares").or_default(),
            async || Ok(shares.next()),
            async |share| destination.import_share(share).await,
            async |share| {
                let there = destination.list_shares(tenant, &share.connection_id).await?;
                Ok(there.iter().any(|s| s.end_user_id == share.end_user_id))
            },
            |share| format!("the share of connection {}", share.connection_id),
        )
        .await?;

        let mut webhooks = Pages::default();
        copy_each(
            tallies.entry("webhooks").or_default(),
            async || webhooks.next(async |after| source.list_webhooks(tenant, after.as_deref(), PAGE).await).await,
            async |record| destination.insert_webhook(record).await,
            async |record| Ok(destination.webhook(tenant, &record.id).await?.is_some()),
            |record| format!("webhook {}", record.id),
        )
        .await?;

        let mut sessions = source.export_connect_sessions(tenant).await?.into_iter();
        copy_each(
            tallies.entry("connect sessions").or_default(),
            async || Ok(sessions.next()),
            async |session| destination.import_connect_session(session).await,
            async |session| Ok(destination.connect_session(tenant, &session.record.id).await?.is_some()),
            |session| format!("connect session {}", session.record.id),
        )
        .await?;

        // The outbox: events, then their deliveries. Neither is found by id alone; what is there
        // already is read once.
        let there: BTreeSet<String> = destination.export_events(tenant).await?.into_iter().map(|e| e.id).collect();
        let mut events = source.export_events(tenant).await?.into_iter();
        copy_each(
            tallies.entry("events").or_default(),
            async || Ok(events.next()),
            async |event| destination.import_event(event).await,
            async |event| Ok(there.contains(&event.id)),
            |event| format!("event {}", event.id),
        )
        .await?;
        let there: BTreeSet<String> = destination.export_deliveries(tenant).await?.into_iter().map(|d| d.id).collect();
        let mut deliveries = source.export_deliveries(tenant).await?.into_iter();
        copy_each(
            tallies.entry("deliveries").or_default(),
            async || Ok(deliveries.next()),
            async |delivery| destination.import_delivery(delivery).await,
            async |delivery| Ok(there.contains(&delivery.id)),
            |delivery| format!("delivery {}", delivery.id),
        )
        .await?;
    }
    Ok(())
}

/// Copies each record `next` gives: inserted as it is; one that conflicts is counted as
/// already there when `present` finds it at the destination, and is an error otherwise.
async fn copy_each<T>(
    tally: &mut Tally,
    mut next: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
    insert: impl AsyncFn(&T) -> portico_store::Result<()>,
    present: impl AsyncFn(&T) -> portico_store::Result<bool>,
    name: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    while let Some(record) = next().await? {
        tally.source += 1;
        match insert(&record).await {
            Ok(()) => tally.copied += 1,
            Err(StoreError::Conflict(_)) if present(&record).await? => tally.present += 1,
            Err(error) => return Err(error).with_context(|| name(&record)),
        }
    }
    Ok(())
}

/// Sign-ins that have not expired at `now`; also how many had.
async fn copy_sign_ins(source: &dyn Store, destination: &dyn Store, now: i64) -> anyhow::Result<(Tally, u64)> {
    let (mut tally, mut expired) = (Tally::default(), 0);
    let present: Vec<String> =
        destination.list_oauth_states().await?.into_iter().map(|state| state.state_hash).collect();
    for state in source.list_oauth_states().await? {
        if state.expires_at < now {
            expired += 1;
            continue;
        }
        tally.source += 1;
        if present.contains(&state.state_hash) {
            tally.present += 1;
        } else {
            destination.import_oauth_state(&state).await.context("a sign-in in progress")?;
            tally.copied += 1;
        }
    }
    Ok((tally, expired))
}

/// The pages of a list, one record at a time.
struct Pages<T> {
    buffered: VecDeque<T>,
    cursor: Option<String>,
    finished: bool,
}

impl<T> Default for Pages<T> {
    fn default() -> Self {
        Pages { buffered: VecDeque::new(), cursor: None, finished: false }
    }
}

impl<T> Pages<T> {
    /// The next record; `fetch` reads the page after a cursor.
    async fn next<F, Fut>(&mut self, fetch: F) -> anyhow::Result<Option<T>>
    where
        F: FnOnce(Option<String>) -> Fut,
        Fut: Future<Output = portico_store::Result<Page<T>>>,
    {
        if self.buffered.is_empty() && !self.finished {
            let page = fetch(self.cursor.take()).await?;
            self.buffered.extend(page.items);
            match page.next {
                Some(next) => self.cursor = Some(next),
                None => self.finished = true,
            }
        }
        Ok(self.buffered.pop_front())
    }
}

/// Both stores, compared.
struct Check {
    /// Records of each kind (the same on both sides when there is no difference).
    counts: BTreeMap<&'static str, u64>,
    /// Sealed values compared byte for byte.
    sealed: u64,
    differences: Vec<String>,
}

impl Check {
    fn differ(&mut self, what: String) {
        self.differences.push(what);
    }

    /// Compares two sealed values (either may be absent), counting those present.
    fn sealed(&mut self, what: &str, source: Option<&SealedBytes>, destination: Option<&SealedBytes>) {
        if source.is_some() {
            self.sealed += 1;
        }
        if source != destination {
            self.differ(format!("{what} differs"));
        }
    }

    /// Compares two ordered lists of records with `same`: records missing on either side and
    /// records that differ are differences. Counts the source's records.
    fn lists<T>(
        &mut self,
        kind: &'static str,
        source: Vec<T>,
        destination: Vec<T>,
        id: impl Fn(&T) -> String,
        same: impl FnMut(&mut Check, &T, &T),
    ) {
        let source: BTreeMap<String, T> = source.into_iter().map(|item| (id(&item), item)).collect();
        let destination: BTreeMap<String, T> = destination.into_iter().map(|item| (id(&item), item)).collect();
        self.merge(kind, source.into_iter(), destination.into_iter(), same);
    }

    fn merge<T>(
        &mut self,
        kind: &'static str,
        mut source: impl Iterator<Item = (String, T)>,
        mut destination: impl Iterator<Item = (String, T)>,
        mut same: impl FnMut(&mut Check, &T, &T),
    ) {
        let (mut a, mut b) = (source.next(), destination.next());
        loop {
            match (&a, &b) {
                (None, None) => return,
                (Some((a_id, a_item)), Some((b_id, b_item))) if a_id == b_id => {
                    *self.counts.entry(kind).or_default() += 1;
                    same(self, a_item, b_item);
                    (a, b) = (source.next(), destination.next());
                }
                (Some((a_id, _)), Some((b_id, _))) if a_id < b_id => {
                    *self.counts.entry(kind).or_default() += 1;
                    self.differ(format!("{kind}: {a_id} is missing at the destination"));
                    a = source.next();
                }
                (Some((a_id, _)), None) => {
                    *self.counts.entry(kind).or_default() += 1;
                    self.differ(format!("{kind}: {a_id} is missing at the destination"));
                    a = source.next();
                }
                (_, Some((b_id, _))) => {
                    self.differ(format!("{kind}: {b_id} is at the destination only"));
                    b = destination.next();
                }
            }
        }
    }
}

async fn verify(source: &dyn Store, destination: &dyn Store, now: i64) -> anyhow::Result<Check> {
    let mut check = Check { counts: KINDS.iter().map(|kind| (*kind, 0)).collect(), sealed: 0, differences: Vec::new() };

    // The settings hold sealed values (the master-key check).
    check.lists(
        "settings",
        source.list_settings().await?,
        destination.list_settings().await?,
        |s| s.0.clone(),
        |check, a, b| {
            check.sealed(&format!("setting {}", a.0), Some(&SealedBytes(a.1.clone())), Some(&SealedBytes(b.1.clone())));
        },
    );

    check.lists(
        "data keys",
        source.data_keys().await?,
        destination.data_keys().await?,
        |key| key.id.clone(),
        |check, a, b| {
            check.sealed(&format!("data key {}", a.id), Some(&a.wrapped), Some(&b.wrapped));
            if a.state != b.state {
                check.differ(format!("data key {} differs", a.id));
            }
        },
    );

    let source_tenants = source.list_tenants().await?;
    check.lists(
        "tenants",
        source_tenants.clone(),
        destination.list_tenants().await?,
        |t| t.id.clone(),
        whole(|t: &Tenant| format!("tenant {}", t.id)),
    );

    for tenant in &source_tenants {
        let tenant = tenant.id.as_str();
        check.lists(
            "API keys",
            source.export_api_keys(tenant).await?,
            destination.export_api_keys(tenant).await?,
            |k| k.record.id.clone(),
            whole(|k: &StoredApiKey| format!("API key {}", k.record.id)),
        );
        let members = async |store: &dyn Store| {
            all(|after| async move { store.list_members(tenant, after.as_deref(), PAGE).await }).await
        };
        check.lists(
            "members",
            members(source).await?,
            members(destination).await?,
            |m| m.id.clone(),
            whole(|m: &MemberRecord| format!("member {}", m.id)),
        );
        let source_connectors =
            all(|after| async move { source.list_connectors(tenant, after.as_deref(), PAGE).await }).await?;
        let destination_connectors =
            all(|after| async move { destination.list_connectors(tenant, after.as_deref(), PAGE).await }).await?;
        check.lists("connectors", source_connectors, destination_connectors, |c| c.id.clone(), compare_connectors);
        let connections = async |store: &dyn Store| {
            let every = ConnectionQuery::default();
            all(|after| async move { store.list_connections(tenant, &every, after.as_deref(), PAGE).await }).await
        };
        check.lists(
            "connections",
            connections(source).await?,
            connections(destination).await?,
            |c| c.id.clone(),
            compare_connections,
        );
        check.lists(
            "shares",
            source.export_shares(tenant).await?,
            destination.export_shares(tenant).await?,
            |s| format!("{}/{}", s.connection_id, s.end_user_id),
            whole(|s: &ShareRecord| format!("the share of connection {} with {}", s.connection_id, s.end_user_id)),
        );
        let webhooks = async |store: &dyn Store| {
            all(|after| async move { store.list_webhooks(tenant, after.as_deref(), PAGE).await }).await
        };
        check.lists(
            "webhooks",
            webhooks(source).await?,
            webhooks(destination).await?,
            |w| w.id.clone(),
            compare_webhooks,
        );
        check.lists(
            "connect sessions",
            source.export_connect_sessions(tenant).await?,
            destination.export_connect_sessions(tenant).await?,
            |s| s.record.id.clone(),
            whole(|s: &StoredConnectSession| format!("connect session {}", s.record.id)),
        );
        check.lists(
            "events",
            source.export_events(tenant).await?,
            destination.export_events(tenant).await?,
            |e| e.id.clone(),
            whole(|e: &EventRecord| format!("event {}", e.id)),
        );
        check.lists(
            "deliveries",
            source.export_deliveries(tenant).await?,
            destination.export_deliveries(tenant).await?,
            |d| d.id.clone(),
            whole(|d: &DeliveryRecord| format!("delivery {}", d.id)),
        );
    }

    let live =
        |states: Vec<OAuthStateRecord>| states.into_iter().filter(|state| state.expires_at >= now).collect::<Vec<_>>();
    check.lists(
        "sign-ins",
        live(source.list_oauth_states().await?),
        live(destination.list_oauth_states().await?),
        |s| s.state_hash.clone(),
        |check, a, b| {
            check.sealed("the PKCE verifier of a sign-in", Some(&a.verifier), Some(&b.verifier));
            if a != b {
                check.differ(format!("the sign-in of connection {} differs", a.connection_id));
            }
        },
    );
    Ok(check)
}

/// Every record of a paged list.
async fn all<T, F, Fut>(mut fetch: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = portico_store::Result<Page<T>>>,
{
    let (mut pages, mut items) = (Pages::default(), Vec::new());
    while let Some(item) = pages.next(&mut fetch).await? {
        items.push(item);
    }
    Ok(items)
}

/// Compares records whole: a difference names the record.
fn whole<T: PartialEq>(name: impl Fn(&T) -> String) -> impl FnMut(&mut Check, &T, &T) {
    move |check, a, b| {
        if a != b {
            check.differ(format!("{} differs", name(a)));
        }
    }
}

fn compare_webhooks(check: &mut Check, a: &WebhookRecord, b: &WebhookRecord) {
    check.sealed(&format!("the sealed secrets of webhook {}", a.id), Some(&a.secrets), Some(&b.secrets));
    if a != b {
        check.differ(format!("webhook {} differs", a.id));
    }
}

fn compare_connectors(check: &mut Check, a: &ConnectorRecord, b: &ConnectorRecord) {
    check.sealed(
        &format!("the sealed OAuth client secret of connector {}", a.id),
        a.oauth_client_secret.as_ref(),
        b.oauth_client_secret.as_ref(),
    );
    if a != b {
        check.differ(format!("connector {} differs", a.id));
    }
}

fn compare_connections(check: &mut Check, a: &ConnectionRecord, b: &ConnectionRecord) {
    check.sealed(&format!("the sealed secrets of connection {}", a.id), a.secrets.as_ref(), b.secrets.as_ref());
    check.sealed(&format!("the sealed tokens of connection {}", a.id), a.tokens.as_ref(), b.tokens.as_ref());
    if a != b {
        check.differ(format!("connection {} differs", a.id));
    }
}
