//! `portico serve` and the options it shares with the tenant commands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use portico_secrets::SecretString;
use portico_server::ServerConfig;
use serde::Deserialize;
use url::Url;

/// Where the store is: shared by `serve` and the tenant commands.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Holds the store, the master key and the admin key file [default: ./portico-data]
    #[arg(long, env = "PORTICO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL [default: SQLite inside the data dir]
    #[arg(long, env = "PORTICO_DATABASE_URL")]
    pub database: Option<String>,
}

impl StoreArgs {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("portico-data"))
    }
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "PORTICO_LISTEN")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    store: StoreArgs,
    /// The base URL users' browsers reach, used for OAuth redirect URIs [default: http://<listen>]
    #[arg(long, env = "PORTICO_PUBLIC_URL")]
    public_url: Option<Url>,
    /// Allow requests to loopback, private and this host's own addresses: backends, the
    /// identity providers of connections' OAuth 2.0, and webhooks
    #[arg(long, env = "PORTICO_ALLOW_PRIVATE_BACKENDS")]
    allow_private_backends: bool,
    /// Largest accepted request body, in bytes [default: 16777216]
    #[arg(long, env = "PORTICO_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Seconds to wait for a backend to accept a connection [default: 10]
    #[arg(long, env = "PORTICO_BACKEND_CONNECT_TIMEOUT")]
    backend_connect_timeout: Option<f64>,
    /// Seconds to wait for a backend's response [default: 60]
    #[arg(long, env = "PORTICO_BACKEND_TIMEOUT")]
    backend_timeout: Option<f64>,
    /// Seconds a client connection may stay without starting a call (a request head still
    /// arriving counts as none) before it is closed; a call in progress is never cut [default: 60]
    #[arg(long, env = "PORTICO_CLIENT_IDLE_TIMEOUT")]
    client_idle_timeout: Option<f64>,
    /// Seconds a client may take to send a request's head before it is closed [default: 10]
    #[arg(long, env = "PORTICO_HEADER_READ_TIMEOUT")]
    header_read_timeout: Option<f64>,
    /// Most header fields in a request's head (1 to 10000); a request with more is answered
    /// 431 Request Header Fields Too Large and its connection closed [default: 100]
    #[arg(long, env = "PORTICO_MAX_HEADER_COUNT")]
    max_header_count: Option<usize>,
    /// Most bytes in a request's head: request line, header fields and the empty line (1024 to
    /// 1048576); a larger one is answered 431 and its connection closed [default: 65536]
    #[arg(long, env = "PORTICO_MAX_HEADER_BYTES")]
    max_header_bytes: Option<usize>,
    /// Most client connections held at once; more are closed as soon as they are accepted
    /// (fewer when the open-file limit does not allow as many) [default: 10000]
    #[arg(long, env = "PORTICO_MAX_CLIENT_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    max_client_connections: Option<u32>,
    /// An origin (scheme://host[:port]) that OAuth sign-ins may return to besides the public
    /// URL's; repeatable
    #[arg(long = "allowed-return-origin", env = "PORTICO_ALLOWED_RETURN_ORIGINS", value_delimiter = ',')]
    allowed_return_origins: Vec<Url>,
    /// A JSON file of identity-provider entries that add to or replace the built-in catalog
    #[arg(long, env = "PORTICO_IDP_CATALOG")]
    idp_catalog: Option<PathBuf>,
    /// A PEM file of root certificates (a private PKI's) that backends' certificates may chain
    /// to, besides the web's roots
    #[arg(long, env = "PORTICO_BACKEND_CA_FILE")]
    backend_ca_file: Option<PathBuf>,
    /// Worker threads, each with its own listener [default: one per core]
    #[arg(long, env = "PORTICO_WORKERS")]
    workers: Option<usize>,
    /// Most connections this instance opens to PostgreSQL; all instances together must stay
    /// below the server's max_connections [default: 10]
    #[arg(long, env = "PORTICO_DATABASE_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..))]
    database_pool_size: Option<u32>,
    /// People sign in to the portal with this OpenID Connect provider (its issuer URL), as well
    /// as with API keys; register <public url>/sign-in/oidc/callback as a redirect URI there
    #[arg(long, env = "PORTICO_OIDC_ISSUER")]
    oidc_issuer: Option<Url>,
    /// The portal's client id at the OpenID Connect provider
    #[arg(long, env = "PORTICO_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// The portal's client secret at the provider (prefer the environment variable: a flag
    /// shows in the process list); none for a public client
    #[arg(long, env = "PORTICO_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
    /// What the portal's sign-in button calls the provider [default: its host name]
    #[arg(long, env = "PORTICO_OIDC_NAME")]
    oidc_name: Option<String>,
    /// Seconds before a failed webhook delivery is tried again; each next retry waits twice as
    /// long [default: 5]
    #[arg(long, env = "PORTICO_WEBHOOK_RETRY_INITIAL")]
    webhook_retry_initial: Option<f64>,
    /// The longest wait between two attempts of a webhook delivery, in seconds [default: 3600]
    #[arg(long, env = "PORTICO_WEBHOOK_RETRY_MAX_INTERVAL")]
    webhook_retry_max_interval: Option<f64>,
    /// Seconds after its event that a webhook delivery is given up [default: 86400]
    #[arg(long, env = "PORTICO_WEBHOOK_RETRY_FOR")]
    webhook_retry_for: Option<f64>,
    /// A file holding the master key (base64 of 32 bytes), kept apart from the data directory
    /// and the database; or the key itself in PORTICO_MASTER_KEY [default: <data dir>/master.key]
    #[arg(long, env = "PORTICO_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Failed authentications an address may make per second (ten times as many at once)
    /// before its unknown keys are refused with 429 without a store query; 0 turns it off.
    /// Behind a load balancer every client has its address [default: 5]
    #[arg(long, env = "PORTICO_AUTH_FAILURE_LIMIT")]
    auth_failure_limit: Option<f64>,
    /// Calls through connections a key may make per second, and as many at once, unless the
    /// key has a limit of its own (`rateLimit`); more get 429 [default: no limit]
    #[arg(long, env = "PORTICO_KEY_RATE_LIMIT")]
    key_rate_limit: Option<f64>,
    /// Calls through connections all keys of a tenant together may make per second (and at
    /// once) [default: no limit]
    #[arg(long, env = "PORTICO_TENANT_RATE_LIMIT")]
    tenant_rate_limit: Option<f64>,
    /// The bearer token a scraper presents to read /metrics (prefer the environment variable);
    /// without one, /metrics is not served
    #[arg(long, env = "PORTICO_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Record every call through a connection in the audit trail (changes are always
    /// recorded) [default: true]
    #[arg(long, env = "PORTICO_AUDIT_CALLS")]
    audit_calls: Option<bool>,
    /// Days the audit trail keeps an event (fractions allowed); 0 keeps them for ever
    /// [default: 90]
    #[arg(long, env = "PORTICO_AUDIT_RETENTION")]
    audit_retention: Option<f64>,
    /// Most audit events of calls waiting to be written; when full, more are dropped and
    /// counted, calls never wait [default: 65536]
    #[arg(long, env = "PORTICO_AUDIT_QUEUE")]
    audit_queue: Option<usize>,
    /// A TOML file with any of these settings (flags and environment variables win)
    #[arg(long, env = "PORTICO_CONFIG")]
    config: Option<PathBuf>,
}

/// The TOML file: the same settings as the flags, in snake case.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    public_url: Option<Url>,
    allow_private_backends: Option<bool>,
    max_body_bytes: Option<usize>,
    workers: Option<usize>,
    database_pool_size: Option<u32>,
    backend_ca_file: Option<PathBuf>,
    backend_connect_timeout: Option<f64>,
    backend_timeout: Option<f64>,
    client_idle_timeout: Option<f64>,
    header_read_timeout: Option<f64>,
    max_header_count: Option<usize>,
    max_header_bytes: Option<usize>,
    max_client_connections: Option<u32>,
    #[serde(default)]
    allowed_return_origins: Vec<Url>,
    idp_catalog: Option<PathBuf>,
    oidc_issuer: Option<Url>,
    oidc_client_id: Option<String>,
    oidc_client_secret: Option<String>,
    oidc_name: Option<String>,
    webhook_retry_initial: Option<f64>,
    webhook_retry_max_interval: Option<f64>,
    webhook_retry_for: Option<f64>,
    master_key_file: Option<PathBuf>,
    metrics_token: Option<String>,
    auth_failure_limit: Option<f64>,
    key_rate_limit: Option<f64>,
    tenant_rate_limit: Option<f64>,
    audit_calls: Option<bool>,
    audit_retention: Option<f64>,
    audit_queue: Option<usize>,
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid configuration file {}", path.display()))
}

fn seconds(value: Option<f64>) -> anyhow::Result<Option<std::time::Duration>> {
    value
        .map(|s| std::time::Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero()))
        .map(|d| d.ok_or_else(|| anyhow::anyhow!("timeouts and retry times must be positive numbers of seconds")))
        .transpose()
}

/// What the audit trail records and keeps: `retention` in days, 0 for ever.
fn audit_settings(
    calls: Option<bool>,
    retention: Option<f64>,
    queue: Option<usize>,
) -> anyhow::Result<portico_app::audit::AuditSettings> {
    let defaults = portico_app::audit::AuditSettings::default();
    let retention = match retention {
        None => defaults.retention,
        Some(0.0) => None,
        Some(days) => Some(
            std::time::Duration::try_from_secs_f64(days * 86_400.0)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| anyhow::anyhow!("--audit-retention must be a positive number of days, or 0"))?,
        ),
    };
    let queue = match queue {
        Some(0) => anyhow::bail!("--audit-queue must be 1 or more"),
        Some(queue) => queue,
        None => defaults.queue,
    };
    Ok(portico_app::audit::AuditSettings { calls: calls.unwrap_or(defaults.calls), queue, retention })
}

/// A limit of request heads: `default` when not given, else within `range`.
fn head_limit(
    value: Option<usize>,
    range: std::ops::RangeInclusive<usize>,
    default: usize,
    flag: &str,
) -> anyhow::Result<usize> {
    match value {
        None => Ok(default),
        Some(n) if range.contains(&n) => Ok(n),
        Some(n) => anyhow::bail!("{flag} must be from {} to {}, not {n}", range.start(), range.end()),
    }
}

/// A rate limit in requests per second: positive, or none.
fn rate(value: Option<f64>, flag: &str) -> anyhow::Result<Option<f64>> {
    match value {
        Some(rate) if !(rate.is_finite() && rate >= 1.0) => {
            anyhow::bail!("{flag} must be a number of requests per second, 1 or more")
        }
        other => Ok(other),
    }
}

/// The master key given to the server: `PORTICO_MASTER_KEY`, or the file named by
/// `--master-key-file` (`PORTICO_MASTER_KEY_FILE`); not both.
pub(crate) fn given_master_key(file: Option<PathBuf>) -> anyhow::Result<Option<portico_app::bootstrap::GivenKey>> {
    let variable = std::env::var("PORTICO_MASTER_KEY").ok().map(SecretString::from);
    match (variable, file) {
        (Some(_), Some(_)) => anyhow::bail!(
            "the master key is given twice: set PORTICO_MASTER_KEY or PORTICO_MASTER_KEY_FILE (--master-key-file), \
             not both"
        ),
        (Some(text), None) => {
            Ok(Some(portico_app::bootstrap::GivenKey { origin: "PORTICO_MASTER_KEY".to_owned(), text }))
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map(SecretString::from).with_context(|| {
                format!("cannot read the master key file {} (PORTICO_MASTER_KEY_FILE)", path.display())
            })?;
            Ok(Some(portico_app::bootstrap::GivenKey { origin: path.display().to_string(), text }))
        }
        (None, None) => Ok(None),
    }
}

/// The OpenID Connect client of the portal: all of issuer and client id, or none.
fn people(
    issuer: Option<Url>,
    client_id: Option<String>,
    client_secret: Option<String>,
    display_name: Option<String>,
) -> anyhow::Result<Option<portico_app::people::PeopleSettings>> {
    match (issuer, client_id) {
        (None, None) if client_secret.is_none() => Ok(None),
        (Some(issuer), Some(client_id)) if !client_id.trim().is_empty() => {
            Ok(Some(portico_app::people::PeopleSettings {
                issuer,
                client_id,
                client_secret: client_secret.filter(|s| !s.is_empty()).map(SecretString::from),
                display_name,
            }))
        }
        _ => anyhow::bail!(
            "people's sign-in with OpenID Connect needs both --oidc-issuer and --oidc-client-id \
             (PORTICO_OIDC_ISSUER, PORTICO_OIDC_CLIENT_ID)"
        ),
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    let data_dir = args.store.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("portico-data"));
    let defaults = ServerConfig::new(&data_dir);
    let config = ServerConfig {
        listen: args.listen.or(file.listen).unwrap_or(defaults.listen),
        database: args.store.database.or(file.database),
        public_url: args.public_url.or(file.public_url),
        allow_private_backends: args.allow_private_backends || file.allow_private_backends.unwrap_or(false),
        master_key: given_master_key(args.master_key_file.or(file.master_key_file))?,
        auth_failures_per_second: match args.auth_failure_limit.or(file.auth_failure_limit) {
            Some(rate) if !(rate.is_finite() && rate >= 0.0) => {
                anyhow::bail!("--auth-failure-limit must be a number of failures per second, 0 or more")
            }
            Some(rate) => rate,
            None => defaults.auth_failures_per_second,
        },
        key_rate_limit: rate(args.key_rate_limit.or(file.key_rate_limit), "--key-rate-limit")?,
        tenant_rate_limit: rate(args.tenant_rate_limit.or(file.tenant_rate_limit), "--tenant-rate-limit")?,
        metrics_token: args.metrics_token.or(file.metrics_token).filter(|t| !t.is_empty()).map(SecretString::from),
        max_body_bytes: args.max_body_bytes.or(file.max_body_bytes).unwrap_or(defaults.max_body_bytes),
        workers: args.workers.or(file.workers).filter(|n| *n > 0),
        cached_connections: defaults.cached_connections,
        backend_ca_file: args.backend_ca_file.or(file.backend_ca_file),
        backend_connect_timeout: seconds(args.backend_connect_timeout.or(file.backend_connect_timeout))?
            .unwrap_or(defaults.backend_connect_timeout),
        backend_timeout: seconds(args.backend_timeout.or(file.backend_timeout))?.unwrap_or(defaults.backend_timeout),
        client_idle_timeout: seconds(args.client_idle_timeout.or(file.client_idle_timeout))?
            .unwrap_or(defaults.client_idle_timeout),
        header_read_timeout: seconds(args.header_read_timeout.or(file.header_read_timeout))?
            .unwrap_or(defaults.header_read_timeout),
        max_header_count: head_limit(
            args.max_header_count.or(file.max_header_count),
            portico_server::MAX_HEADER_COUNT_RANGE,
            defaults.max_header_count,
            "--max-header-count",
        )?,
        max_header_bytes: head_limit(
            args.max_header_bytes.or(file.max_header_bytes),
            portico_server::MAX_HEADER_BYTES_RANGE,
            defaults.max_header_bytes,
            "--max-header-bytes",
        )?,
        max_client_connections: args
            .max_client_connections
            .or(file.max_client_connections)
            .map_or(defaults.max_client_connections, |n| n as usize),
        allowed_return_origins: if args.allowed_return_origins.is_empty() {
            file.allowed_return_origins
        } else {
            args.allowed_return_origins
        },
        idp_catalog: args.idp_catalog.or(file.idp_catalog),
        database_pool_size: args.database_pool_size.or(file.database_pool_size).filter(|n| *n > 0),
        people: people(
            args.oidc_issuer.or(file.oidc_issuer),
            args.oidc_client_id.or(file.oidc_client_id),
            args.oidc_client_secret.or(file.oidc_client_secret),
            args.oidc_name.or(file.oidc_name),
        )?,
        deliveries: {
            let defaults = portico_app::webhooks::DeliverySettings::default();
            portico_app::webhooks::DeliverySettings {
                retry_initial: seconds(args.webhook_retry_initial.or(file.webhook_retry_initial))?
                    .unwrap_or(defaults.retry_initial),
                retry_max_interval: seconds(args.webhook_retry_max_interval.or(file.webhook_retry_max_interval))?
                    .unwrap_or(defaults.retry_max_interval),
                retry_for: seconds(args.webhook_retry_for.or(file.webhook_retry_for))?.unwrap_or(defaults.retry_for),
                ..defaults
            }
        },
        audit: audit_settings(
            args.audit_calls.or(file.audit_calls),
            args.audit_retention.or(file.audit_retention),
            args.audit_queue.or(file.audit_queue),
        )?,
        data_dir,
    };
    let data_dir = config.data_dir.clone();
    let store_kind = if config.database.is_some() { "database from --database" } else { "embedded SQLite" };
    let running = portico_server::start(config).await?;
    let base = running.public_url.as_str().trim_end_matches('/').to_owned();
    println!("Portico is listening on http://{}", running.addr);
    println!("  Portal:   {base}/");
    println!("  API:      {base}/v1  (description: {base}/openapi.json)");
    println!("  Data:     {} ({store_kind})", data_dir.display());
    let key_file = data_dir.join(portico_app::bootstrap::ADMIN_KEY_FILE);
    match &running.admin_key_file {
        Some(path) => println!("  API key of tenant 'default' written to {} (keep it secret)", path.display()),
        None if key_file.exists() => println!("  API key of tenant 'default': see {}", key_file.display()),
        None => {}
    }
    println!("Try:  curl -H \"Authorization: Bearer $(cat {})\" {base}/v1/connectors", key_file.display());
    tracing::info!(addr = %running.addr, "listening");
    running.wait().await
}
