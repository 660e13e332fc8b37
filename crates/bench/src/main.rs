//! `portico-bench`: the proxy benchmark (`run`) and its two fallbacks (`backend`, `load`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use portico_bench::{backend, load, run};

#[derive(Parser)]
#[command(name = "portico-bench", version, about = "Portico's proxy measured against nginx and a direct baseline.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A minimal HTTP/1 backend answering `200 ok` (keep-alive), one runtime per core.
    Backend {
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: SocketAddr,
        /// Listener threads [default: one per core]
        #[arg(long)]
        threads: Option<usize>,
    },
    /// An HTTP/1 load generator: N keep-alive connections, latency percentiles; closed loop, or
    /// open loop at a fixed rate.
    Load {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// A request header, 'Name: value' (repeatable)
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Threads [default: one per usable CPU]
        #[arg(long)]
        threads: Option<usize>,
        /// Open loop: send this many requests per second in all, on a fixed schedule, and count
        /// each one's latency from its scheduled time [default: closed loop]
        #[arg(long)]
        rate: Option<f64>,
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// The whole benchmark: backend, nginx, Portico, alternating rounds, the table.
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Rounds; every target is measured once per round and concurrency
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds per measurement
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Seconds of unrecorded load per target before the first round (0: none)
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Concurrent connections, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    connections: Vec<usize>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    /// The portico binary [default: beside portico-bench, else target/release/portico]
    #[arg(long)]
    portico: Option<PathBuf>,
    /// Portico's log filter during the run (nginx runs with access_log off)
    #[arg(long, default_value = "warn")]
    portico_log: String,
    /// An argument added to `portico serve`, e.g. `--portico-arg=--audit-calls=false`
    /// (repeatable)
    #[arg(long, allow_hyphen_values = true)]
    portico_arg: Vec<String>,
    /// Threads of the built-in backend (used without nginx; nginx's backend has 1 worker)
    #[arg(long, default_value_t = 1)]
    backend_threads: usize,
    /// Use the built-in backend and skip the nginx proxy even if nginx is installed
    #[arg(long)]
    no_nginx: bool,
    /// Use the built-in load generator even if wrk is installed
    #[arg(long)]
    no_wrk: bool,
    /// Do not pin the load generator to the last CPU
    #[arg(long)]
    no_pin: bool,
    /// Also pin nginx, Portico and the backend to the CPUs the load generator does not use
    #[arg(long, conflicts_with = "no_pin")]
    pin_servers: bool,
    /// After the closed-loop rounds, the same rounds at one fixed rate (open loop, built-in
    /// generator, largest concurrency): this fraction of the slowest target's median req/s
    /// (0: skip them)
    #[arg(long, default_value_t = 0.3)]
    fixed_rate: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Backend { listen, threads } => serve_backend(listen, threads),
        Command::Load { url, connections, duration, headers, threads, rate, json } => {
            let config =
                load::LoadConfig { url, connections, duration: Duration::ZERO, headers: Vec::new(), threads, rate };
            generate_load(config, duration, &headers, json)
        }
        Command::Run(args) => return run_benchmark(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portico-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve_backend(listen: SocketAddr, threads: Option<usize>) -> anyhow::Result<()> {
    let backend = backend::Backend::start(listen, threads)?;
    println!(
        "portico-bench backend listening on http://{} ({} thread(s))",
        backend.addr(),
        threads.unwrap_or_else(backend::cores).max(1)
    );
    backend.wait();
    Ok(())
}

fn generate_load(mut config: load::LoadConfig, duration: f64, headers: &[String], json: bool) -> anyhow::Result<()> {
    if !(duration > 0.0 && duration <= 3600.0) {
        anyhow::bail!("--duration must be between 0 and 3600 seconds");
    }
    config.duration = Duration::from_secs_f64(duration);
    config.headers = headers.iter().map(|h| load::parse_header(h)).collect::<anyhow::Result<Vec<_>>>()?;
    let result = load::run(&config)?;
    if json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!("{}", result.summary());
    }
    Ok(())
}

fn run_benchmark(args: RunArgs) -> ExitCode {
    let options = run::RunOptions {
        rounds: args.rounds,
        duration: args.duration,
        warmup: args.warmup,
        connections: args.connections,
        json: args.json,
        portico: args.portico,
        portico_log: args.portico_log,
        portico_args: args.portico_arg,
        backend_threads: args.backend_threads,
        no_nginx: args.no_nginx,
        no_wrk: args.no_wrk,
        no_pin: args.no_pin,
        pin_servers: args.pin_servers,
        fixed_rate: args.fixed_rate,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("portico-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On Ctrl-C or SIGTERM the benchmark's future is dropped: its guards stop every process
    // it started and remove its temporary directory.
    let outcome = runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = run::run(options) => result.map(Some),
            _ = tokio::signal::ctrl_c() => Ok(None),
            _ = terminate.recv() => Ok(None),
        }
    });
    match outcome {
        Ok(Some(true)) => ExitCode::SUCCESS,
        Ok(Some(false)) => {
            eprintln!("portico-bench: some targets failed their checks and were not measured (see above)");
            ExitCode::FAILURE
        }
        Ok(None) => {
            eprintln!("portico-bench: interrupted; everything it started has been stopped");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("portico-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
