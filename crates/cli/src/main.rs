//! `portico`: the server and the connector author's tools in one binary.

mod audit;
mod connector;
mod keys;
mod migrate;
mod serve;
mod tenant;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// mimalloc, linked in place of the C library's `malloc` (its "override" feature), under Rust's
/// own `System` allocator. The data path allocates a few short-lived blocks per call, which
/// mimalloc serves from per-thread free lists; `System` calls plain `malloc` for them, where the
/// `mimalloc` crate's allocator would call `mi_malloc_aligned` for every block, which
/// over-allocates on a slower path for most sizes above 1 KiB (−520 instructions per call).
/// Its version is logged at start-up (debug level).
#[global_allocator]
static ALLOCATOR: std::alloc::System = std::alloc::System;

#[derive(Parser)]
#[command(name = "portico", version, about = "Custom connectors and their connections, self-hosted.")]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value = "text", env = "PORTICO_LOG_FORMAT")]
    log_format: serve::LogFormat,
    /// Log filter, e.g. `info` or `portico_server=debug`.
    #[arg(long, global = true, default_value = "info", env = "PORTICO_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Portico server.
    Serve(Box<serve::ServeArgs>),
    /// Manage tenants and their API keys.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Check and inspect connector definitions before publishing them.
    #[command(subcommand)]
    Connector(connector::ConnectorCommand),
    /// Rotate the data keys that seal stored secrets, online; show what each key seals.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Move a whole store to another (e.g. SQLite to PostgreSQL), checked and resumable.
    Migrate(migrate::MigrateArgs),
    /// Read the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

fn main() -> ExitCode {
    // One TLS crypto provider for every client in the process (token endpoints, backends).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    tracing::debug!(version = mimalloc::MiMalloc.version(), "mimalloc");
    match cli.command {
        Command::Connector(command) => connector::run(command),
        Command::Serve(args) => run_async(serve::serve(*args)),
        Command::Tenant(command) => run_async(tenant::run(command)),
        Command::Migrate(args) => run_async(migrate::run(args)),
        Command::Audit(command) => run_async(audit::run(command)),
        Command::Keys(command) => run_async(keys::run(command)),
    }
}

fn run_async(task: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("portico: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portico: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: serve::LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: logs piped to a file or a collector stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        serve::LogFormat::Text => builder.init(),
        serve::LogFormat::Json => builder.json().init(),
    }
}
