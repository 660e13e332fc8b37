//! `portico-bench run`: the whole benchmark.
//!
//! Starts the backend, the nginx proxy and Portico (each stopped when this function returns or
//! its future is dropped, on Ctrl-C too), verifies every target answers `ok` with the
//! credential applied, then measures the targets alternately, round after round, and prints
//! the medians and per-round ratios.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::{Method, StatusCode};
use serde::Serialize;

use crate::load::LoadResult;
use crate::portico::{self, Portico};
use crate::procs::{Launcher, Proc};
use crate::report::{self, DIRECT, NGINX, Sample, Series};
use crate::{backend, http, nginx, system, wrk};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub rounds: usize,
    /// Seconds per measurement.
    pub duration: u64,
    /// Seconds of unrecorded load per target before the first round (0: none).
    pub warmup: u64,
    pub connections: Vec<usize>,
    pub json: bool,
    /// The `portico` binary; default: beside this one, else target/release/portico.
    pub portico: Option<PathBuf>,
    pub portico_log: String,
    /// Added to `portico serve`.
    pub portico_args: Vec<String>,
    pub backend_threads: usize,
    pub no_nginx: bool,
    pub no_wrk: bool,
    pub no_pin: bool,
    /// Also pin the servers, to every CPU but the load generator's.
    pub pin_servers: bool,
    /// The fixed-rate phase's rate, as a fraction of the slowest target's median req/s at the
    /// largest concurrency (0: no fixed-rate phase).
    pub fixed_rate: f64,
}

/// How the load is generated.
#[derive(Debug, Clone)]
enum Generator {
    Wrk(PathBuf),
    BuiltIn(PathBuf),
}

/// Something to measure.
#[derive(Debug, Clone)]
struct Target {
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    /// The echo URL and the answer it must give (what reached the backend).
    echo: Option<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub target: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub backend: String,
    pub nginx_proxy: String,
    pub portico: String,
    pub load_generator: String,
    pub pinning: String,
    /// 1-minute load average before the servers started and after the last round.
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub environment: Environment,
    pub rounds: usize,
    pub duration_secs: u64,
    pub warmup_secs: u64,
    pub connections: Vec<usize>,
    pub failed: Vec<Failure>,
    pub rows: Vec<report::Row>,
    pub series: Vec<Series>,
    pub fixed_rate: Option<FixedRate>,
}

/// The open-loop phase: every target at the same scheduled rate, well below what the slowest
/// can carry, so that the latency it adds is not that of a saturated queue.
#[derive(Debug, Clone, Serialize)]
pub struct FixedRate {
    /// Requests per second, scheduled.
    pub rate: f64,
    pub connections: usize,
    /// The fraction of the slowest target's median req/s that `rate` is.
    pub fraction: f64,
    pub rows: Vec<report::Row>,
    pub series: Vec<Series>,
}

fn default_portico() -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("portico")));
    match beside {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("target/release/portico"),
    }
}

/// Waits until something accepts connections on `port`, or fails if `process` exits first.
async fn wait_listening(port: u16, process: &mut Proc) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = process.exited() {
            bail!("{} exited ({status}):\n{}", process.name(), process.log_tail(20));
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("{} is not listening on port {port} after 10 s:\n{}", process.name(), process.log_tail(20));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET `url` with `headers`: `Ok(())` when the answer is 200 with exactly `expected` as body.
async fn check(url: &str, headers: &[(String, String)], expected: &str) -> Result<(), String> {
    let (status, body) = http::call(Method::GET, url, headers, None).await.map_err(|e| format!("{e:#}"))?;
    if status == StatusCode::OK && body == expected {
        return Ok(());
    }
    let mut shown: String = body.chars().take(400).collect();
    if shown.len() < body.len() {
        shown.push('…');
    }
    Err(format!("GET {url} → {status}, body {shown:?} (expected 200 with {expected:?})"))
}

async fn verify(target: &Target) -> Result<(), String> {
    check(&target.url, &target.headers, "ok").await?;
    if let Some((url, expected)) = &target.echo {
        check(url, &target.headers, expected).await.map_err(|e| format!("credential check: {e}"))?;
    }
    Ok(())
}

struct Measurer {
    /// Where the generator's output goes.
    dir: PathBuf,
    generator: Generator,
    /// This program, whose `load` command runs the fixed-rate phase (wrk has no fixed rate).
    built_in: PathBuf,
    pin: Option<(PathBuf, usize)>,
}

impl Measurer {
    fn describe(&self, server_cpus: Option<&str>) -> (String, String) {
        let generator = match &self.generator {
            Generator::Wrk(path) => format!(
                "{} ({}, --latency)",
                system::version_line(path, &["-v"]).unwrap_or_else(|| "wrk".to_owned()),
                path.display()
            ),
            Generator::BuiltIn(_) => "portico-bench load (built in: hyper client, HDR histogram)".to_owned(),
        };
        let pinning = match &self.pin {
            Some((_, cpu)) => match server_cpus {
                Some(servers) => {
                    format!(
                        "load generator pinned to CPU {cpu} with taskset, 1 thread; servers pinned to CPU {servers}"
                    )
                }
                None => format!(
                    "load generator pinned to CPU {cpu} with taskset, 1 thread; the servers may use every CPU \
                     ({})",
                    system::allowed_cpus().iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
                ),
            },
            None => "none (load generator and servers share every CPU)".to_owned(),
        };
        (generator, pinning)
    }

    fn threads(&self, connections: usize) -> usize {
        let threads = if self.pin.is_some() { 1 } else { backend::cores() };
        threads.clamp(1, connections)
    }

    /// One run of `target`: closed loop, or open loop at `rate` requests per second.
    async fn measure(
        &self,
        target: &Target,
        connections: usize,
        seconds: u64,
        rate: Option<f64>,
    ) -> anyhow::Result<Sample> {
        let threads = self.threads(connections);
        let generator = match rate {
            Some(_) => &Generator::BuiltIn(self.built_in.clone()),
            None => &self.generator,
        };
        let (program, mut args): (&Path, Vec<String>) = match generator {
            Generator::Wrk(wrk) => {
                let mut args = vec![
                    format!("-t{threads}"),
                    format!("-c{connections}"),
                    format!("-d{seconds}s"),
                    "--latency".to_owned(),
                ];
                for (name, value) in &target.headers {
                    args.extend(["-H".to_owned(), format!("{name}: {value}")]);
                }
                args.push(target.url.clone());
                (wrk, args)
            }
            Generator::BuiltIn(exe) => {
                let mut args = vec![
                    "load".to_owned(),
                    "--url".to_owned(),
                    target.url.clone(),
                    "--connections".to_owned(),
                    connections.to_string(),
                    "--duration".to_owned(),
                    seconds.to_string(),
                    "--threads".to_owned(),
                    threads.to_string(),
                    "--json".to_owned(),
                ];
                for (name, value) in &target.headers {
                    args.extend(["--header".to_owned(), format!("{name}: {value}")]);
                }
                if let Some(rate) = rate {
                    args.extend(["--rate".to_owned(), format!("{rate:.0}")]);
                }
                (exe, args)
            }
        };
        let mut command = match &self.pin {
            Some((taskset, cpu)) => {
                let mut command = Command::new(taskset);
                command.arg("-c").arg(cpu.to_string()).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.args(args.drain(..));
        // Its own guard: stopped and reaped on every path out of here, Ctrl-C included.
        let log = self.dir.join("load.out");
        let _ = std::fs::remove_file(&log);
        let mut process = Proc::spawn("load generator", command, &log)?;
        let until = Instant::now() + Duration::from_secs(seconds + 30);
        let status = loop {
            if let Some(status) = process.status() {
                break status;
            }
            if Instant::now() > until {
                bail!("the load generator did not finish in time:\n{}", process.log_tail(10));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        if !status.success() {
            bail!("load generator failed ({status}): {}", output.trim());
        }
        match generator {
            Generator::Wrk(_) => {
                let result = wrk::parse(&output)?;
                Ok(Sample {
                    requests_per_sec: result.requests_per_sec,
                    p50_ms: result.p50_ms.unwrap_or(result.mean_ms),
                    p99_ms: result.p99_ms.unwrap_or(result.max_ms),
                    requests: result.requests,
                    non_success: result.non_success,
                    errors: result.socket_errors,
                })
            }
            Generator::BuiltIn(_) => {
                let last = output.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
                let result: LoadResult = serde_json::from_str(last)
                    .with_context(|| format!("unexpected output of portico-bench load: {output}"))?;
                Ok(Sample {
                    requests_per_sec: result.requests_per_sec,
                    p50_ms: result.p50_ms,
                    p99_ms: result.p99_ms,
                    requests: result.requests,
                    non_success: result.non_success,
                    errors: result.errors,
                })
            }
        }
    }
}

/// Runs the benchmark; `Ok(false)` when some target failed its checks (the others were
/// measured and printed).
pub async fn run(options: RunOptions) -> anyhow::Result<bool> {
    if options.rounds == 0 || options.duration == 0 || options.connections.is_empty() {
        bail!("--rounds, --duration and --connections must be positive");
    }
    if options.connections.contains(&0) {
        bail!("--connections must be positive");
    }
    if !(0.0..=1.0).contains(&options.fixed_rate) {
        bail!("--fixed-rate is a fraction between 0 and 1");
    }
    let self_exe = std::env::current_exe().context("cannot find portico-bench itself")?;
    let load_before = system::load_average();
    if let Some(load) = load_before.filter(|&l| l > 0.5 * backend::cores() as f64) {
        eprintln!("warning: load average {load:.2} on {} CPUs: other work will skew the figures", backend::cores());
    }
    // Dropped last (after every process below): the processes' files live in it.
    let dir = tempfile::Builder::new().prefix("portico-bench-").tempdir()?;
    let nginx = if options.no_nginx { None } else { system::which("nginx") };
    let nginx_version = nginx.as_ref().and_then(|n| system::version_line(n, &["-v"])).unwrap_or_default();
    let nginx_version = nginx_version.trim_start_matches("nginx version: ").to_owned();

    let generator = match system::which("wrk").filter(|_| !options.no_wrk) {
        Some(wrk) => Generator::Wrk(wrk),
        None => Generator::BuiltIn(self_exe.clone()),
    };
    let cpus = system::allowed_cpus();
    let pin = match (options.no_pin, system::which("taskset"), cpus.iter().max()) {
        (false, Some(taskset), Some(&last)) if cpus.len() >= 2 => Some((taskset, last)),
        _ => None,
    };
    let server_cpus = match &pin {
        Some((_, last)) if options.pin_servers => {
            Some(cpus.iter().filter(|&c| c != last).map(ToString::to_string).collect::<Vec<_>>().join(","))
        }
        _ => None,
    };
    let launcher = Launcher { taskset: pin.as_ref().zip(server_cpus.clone()).map(|((t, _), cpus)| (t.clone(), cpus)) };

    // (a) the backend.
    let backend_port = system::free_port()?;
    let (mut backend, backend_desc) = match &nginx {
        Some(nginx) => (
            nginx::start(&launcher, nginx, dir.path(), "nginx-backend", |p| nginx::backend_conf(p, backend_port))?,
            format!("{nginx_version}: return 200 \"ok\", 1 worker, access_log off"),
        ),
        None => {
            let mut command = launcher.command(&self_exe);
            command.args(["backend", "--listen", &format!("127.0.0.1:{backend_port}")]);
            command.args(["--threads", &options.backend_threads.to_string()]);
            let why = if options.no_nginx { "--no-nginx" } else { "nginx not found" };
            (
                Proc::spawn("backend", command, &dir.path().join("backend.log"))?,
                format!("portico-bench backend (built in, {} thread(s); {why})", options.backend_threads),
            )
        }
    };
    wait_listening(backend_port, &mut backend).await?;
    eprintln!("backend: {backend_desc} on 127.0.0.1:{backend_port}");

    // (b) the nginx proxy.
    let mut failed = Vec::new();
    let mut nginx_proxy = None;
    let nginx_port = system::free_port()?;
    let nginx_desc = match &nginx {
        Some(path) => {
            // `auto` counts every CPU of the machine (nginx 1.22 ignores the affinity mask): with
            // pinned servers, one worker per CPU they may use instead.
            let workers = match &server_cpus {
                Some(list) => list.split(',').count().to_string(),
                None => "auto".to_owned(),
            };
            let mut proc = nginx::start(&launcher, path, dir.path(), "nginx-proxy", |p| {
                nginx::proxy_conf(p, &workers, nginx_port, backend_port, portico::API_KEY)
            })?;
            wait_listening(nginx_port, &mut proc).await?;
            nginx_proxy = Some(proc);
            format!(
                "{nginx_version}: worker_processes {workers}, upstream keepalive 64, proxy_set_header X-Api-Key, \
                 Authorization removed"
            )
        }
        None if options.no_nginx => "not measured (--no-nginx)".to_owned(),
        None => "not measured: nginx not found (apt-get install -y --no-install-recommends nginx-light)".to_owned(),
    };

    // (c) Portico, its connectors and connections.
    let portico_bin = options.portico.clone().unwrap_or_else(default_portico);
    // Portico runs in its data dir: a relative path must not depend on that.
    let portico_bin = std::path::absolute(&portico_bin).unwrap_or(portico_bin);
    let mut portico_targets = Vec::new();
    let mut portico_desc = format!("{} — not started", portico_bin.display());
    let mut portico_proc = None;
    if !portico_bin.exists() {
        let reason = format!("no Portico binary at {} (cargo build --release -p portico-cli)", portico_bin.display());
        for kind in portico::kinds() {
            failed.push(Failure { target: kind.target.to_owned(), reason: reason.clone() });
        }
    } else {
        let data_dir = dir.path().join("portico-data");
        std::fs::create_dir_all(&data_dir)?;
        let port = system::free_port()?;
        match portico::start(&launcher, &portico_bin, &data_dir, port, &options.portico_log, &options.portico_args)
            .await
        {
            Err(e) => {
                for kind in portico::kinds() {
                    failed.push(Failure { target: kind.target.to_owned(), reason: format!("{e:#}") });
                }
            }
            Ok(running) => {
                portico_desc = format!(
                    "{} ({}), --log {}, on 127.0.0.1:{port}",
                    portico_bin.display(),
                    Portico::version(&portico_bin),
                    options.portico_log
                );
                for kind in portico::kinds() {
                    match running.set_up(&kind, backend_port).await {
                        Ok(connection) => portico_targets.push(Target {
                            name: kind.target.to_owned(),
                            url: running.proxy_url(&connection, "ok"),
                            headers: vec![("Authorization".to_owned(), format!("Bearer {}", running.api_key))],
                            echo: Some((running.proxy_url(&connection, nginx::ECHO_PATH), kind.expected_echo.clone())),
                        }),
                        Err(e) => {
                            failed.push(Failure { target: kind.target.to_owned(), reason: format!("set-up: {e:#}") })
                        }
                    }
                }
                portico_proc = Some(running);
            }
        }
    }
    eprintln!("portico: {portico_desc}");

    // The caller sends the same Authorization header to every target (nginx and Portico drop it).
    let caller = match &portico_proc {
        Some(p) => vec![("Authorization".to_owned(), format!("Bearer {}", p.api_key))],
        None => vec![("Authorization".to_owned(), "Bearer pk_bench_caller_key_not_forwarded".to_owned())],
    };
    let mut targets = vec![Target {
        name: DIRECT.to_owned(),
        url: format!("http://127.0.0.1:{backend_port}/ok"),
        headers: caller.clone(),
        echo: None,
    }];
    if nginx_proxy.is_some() {
        targets.push(Target {
            name: NGINX.to_owned(),
            url: format!("http://127.0.0.1:{nginx_port}/ok"),
            headers: caller.clone(),
            echo: Some((
                format!("http://127.0.0.1:{nginx_port}{}", nginx::ECHO_PATH),
                format!("{}||", portico::API_KEY),
            )),
        });
    }
    targets.extend(portico_targets);

    // Nothing is measured that does not answer `ok` with the credential applied.
    let mut measured = Vec::new();
    for target in targets {
        match verify(&target).await {
            Ok(()) => measured.push(target),
            Err(reason) => {
                // A leaked caller key shows up in the echo: it is a throwaway key, but say what it is.
                let reason = match &portico_proc {
                    Some(p) => reason.replace(&p.api_key, "<the caller's Portico API key>"),
                    None => reason,
                };
                failed.push(Failure { target: target.name.clone(), reason })
            }
        }
    }
    eprintln!("verified: {}", measured.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "));
    eprint!("{}", render_failures(&failed));

    // (d) measure.
    let measurer = Measurer { dir: dir.path().to_owned(), generator, built_in: self_exe.clone(), pin };
    let (generator_desc, pinning) = measurer.describe(server_cpus.as_deref());
    eprintln!("load generator: {generator_desc}; pinning: {pinning}");

    let max_connections = options.connections.iter().copied().max().unwrap_or(1);
    if options.warmup > 0 {
        for target in &measured {
            eprintln!("warm-up: {} ({} conns, {} s)", target.name, max_connections, options.warmup);
            if let Err(e) = measurer.measure(target, max_connections, options.warmup, None).await {
                eprintln!("warm-up of {} failed: {e:#}", target.name);
            }
        }
    }
    let series = rounds(&measurer, &measured, &options.connections, &options, None).await;
    let rows = report::summarize(&series);

    // (e) the same targets at one fixed rate that the slowest of them carries easily.
    let slowest = rows
        .iter()
        .filter(|r| r.connections == max_connections && r.requests_per_sec > 0.0)
        .map(|r| r.requests_per_sec)
        .min_by(f64::total_cmp);
    let fixed_rate = match slowest {
        Some(slowest) if options.fixed_rate > 0.0 => {
            let rate = (slowest * options.fixed_rate).round().max(1.0);
            eprintln!(
                "fixed rate: {rate:.0} req/s ({:.0} % of the slowest target's {slowest:.0}), {max_connections} conns, \
                 open loop",
                options.fixed_rate * 100.0
            );
            let series = rounds(&measurer, &measured, &[max_connections], &options, Some(rate)).await;
            Some(FixedRate {
                rate,
                connections: max_connections,
                fraction: options.fixed_rate,
                rows: report::summarize(&series),
                series,
            })
        }
        _ => None,
    };

    // (f) the tables.
    let report = Report {
        environment: Environment {
            cpus: backend::cores(),
            cpu_model: system::cpu_model(),
            kernel: system::kernel(),
            backend: backend_desc,
            nginx_proxy: nginx_desc,
            portico: portico_desc,
            load_generator: generator_desc,
            pinning,
            load_before,
            load_after: system::load_average(),
        },
        rounds: options.rounds,
        duration_secs: options.duration,
        warmup_secs: options.warmup,
        connections: options.connections.clone(),
        failed,
        rows,
        series,
        fixed_rate,
    };
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    // Stop everything before the tempdir goes: Portico, then nginx, then the backend.
    drop(portico_proc);
    drop(nginx_proxy);
    drop(backend);
    drop(dir);
    Ok(report.failed.is_empty())
}

/// Every target at every concurrency once per round, alternating, starting one target further
/// each round; closed loop, or open loop at `rate`.
async fn rounds(
    measurer: &Measurer,
    targets: &[Target],
    concurrencies: &[usize],
    options: &RunOptions,
    rate: Option<f64>,
) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for &connections in concurrencies {
        for target in targets {
            series.push(Series { target: target.name.clone(), connections, rounds: vec![None; options.rounds] });
        }
    }
    let n = targets.len();
    let mode = match rate {
        Some(rate) => format!("at {rate:.0}/s"),
        None => String::new(),
    };
    for round in 0..options.rounds {
        for (ci, &connections) in concurrencies.iter().enumerate() {
            for i in 0..n {
                let ti = (i + round) % n;
                let target = &targets[ti];
                let started = Instant::now();
                let result = measurer.measure(target, connections, options.duration, rate).await;
                let slot = &mut series[ci * n + ti].rounds[round];
                match result {
                    Ok(sample) => {
                        eprintln!(
                            "round {}/{} c={connections:<3}{mode} {:<22} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms{}",
                            round + 1,
                            options.rounds,
                            target.name,
                            sample.requests_per_sec,
                            sample.p50_ms,
                            sample.p99_ms,
                            if sample.non_success + sample.errors > 0 {
                                format!("  ({} non-2xx, {} errors)", sample.non_success, sample.errors)
                            } else {
                                String::new()
                            }
                        );
                        *slot = Some(sample);
                    }
                    Err(e) => eprintln!(
                        "round {}/{} c={connections}{mode} {}: FAILED after {:.1} s: {e:#}",
                        round + 1,
                        options.rounds,
                        target.name,
                        started.elapsed().as_secs_f64()
                    ),
                }
            }
        }
    }
    series
}

/// The human-readable report.
pub fn render(report: &Report) -> String {
    let env = &report.environment;
    let mut out = String::new();
    let _ = writeln!(out, "\nPortico proxy benchmark");
    let _ = writeln!(out, "machine:        {} CPUs (nproc), {}, Linux {}", env.cpus, env.cpu_model, env.kernel);
    let _ = writeln!(out, "backend:        {}", env.backend);
    let _ = writeln!(out, "nginx proxy:    {}", env.nginx_proxy);
    let _ = writeln!(out, "portico:        {}", env.portico);
    let _ = writeln!(out, "load generator: {}", env.load_generator);
    let _ = writeln!(out, "pinning:        {}", env.pinning);
    let load = |l: Option<f64>| l.map(|l| format!("{l:.2}")).unwrap_or_else(|| "?".to_owned());
    let busy = env.load_before.is_some_and(|l| l > 0.5 * env.cpus as f64);
    let _ = writeln!(
        out,
        "load average:   {} before, {} after (1 min; the benchmark itself adds about {}){}",
        load(env.load_before),
        load(env.load_after),
        env.cpus,
        if busy { ": the machine was busy before it started, the figures are likely skewed" } else { "" }
    );
    let _ = writeln!(
        out,
        "runs:           {} rounds × {} s per target and concurrency, targets alternating within each round{}",
        report.rounds,
        report.duration_secs,
        if report.warmup_secs > 0 { format!(", {} s warm-up each", report.warmup_secs) } else { String::new() }
    );
    let _ = writeln!(out);
    if report.rows.is_empty() {
        let _ = writeln!(out, "nothing was measured");
    } else {
        out.push_str(&report::render_table(&report.rows));
        let _ = writeln!(
            out,
            "\nreq/s, p50, p99: medians over the rounds. ÷ nginx, ÷ direct (req/s) and +p99 (ms over direct): \
             computed within each round, then the median."
        );
        if let Some(fixed) = &report.fixed_rate {
            let _ = writeln!(
                out,
                "\nAt a fixed rate: {:.0} req/s scheduled ({:.0} % of the slowest target's median above), {} conns, \
                 open loop (portico-bench load; latency from each request's scheduled time):\n",
                fixed.rate,
                fixed.fraction * 100.0,
                fixed.connections
            );
            out.push_str(&report::render_fixed_rate_table(&fixed.rows));
        }
        let _ = writeln!(out, "\nIssue 4 goals:");
        let fixed = report.fixed_rate.as_ref().map(|f| (f.rate, f.rows.as_slice()));
        out.push_str(&report::render_goals(&report.rows, fixed, "portico-apikey-header"));
    }
    let fixed_rows = report.fixed_rate.iter().flat_map(|f| &f.rows);
    let noisy: Vec<&report::Row> =
        report.rows.iter().chain(fixed_rows).filter(|r| r.non_success + r.errors > 0).collect();
    for row in noisy {
        let _ = writeln!(
            out,
            "WARNING {} at {} conns: {} non-2xx responses and {} errors over the runs",
            row.target, row.connections, row.non_success, row.errors
        );
    }
    if !report.failed.is_empty() {
        let _ = writeln!(out, "\nNot measured:");
        out.push_str(&render_failures(&report.failed));
    }
    out
}

/// One line per distinct reason (Portico failing to start fails its four targets alike).
fn render_failures(failed: &[Failure]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < failed.len() {
        let reason = &failed[i].reason;
        let same = failed[i..].iter().take_while(|f| &f.reason == reason).count();
        let names: Vec<&str> = failed[i..i + same].iter().map(|f| f.target.as_str()).collect();
        let _ = writeln!(out, "  FAILED {}: {reason}", names.join(", "));
        i += same;
    }
    out
}
