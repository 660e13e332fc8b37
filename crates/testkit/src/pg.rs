//! PostgreSQL for tests: [`TestDatabase`], a database of one test on a shared server (at
//! `PORTICO_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/postgres`), dropped
//! afterwards; and [`PrivateCluster`], a server of one's own (initdb, pg_ctl) that a test may
//! stop and start.

use std::future::Future;
use std::hash::{BuildHasher as _, Hasher as _, RandomState};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions as _, Connection as _};

use crate::skip_or_fail;

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The shared server's maintenance database: `PORTICO_TEST_POSTGRES`, else the default.
pub fn admin_url() -> String {
    std::env::var("PORTICO_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES.to_owned())
}

/// 64 random bits: each `RandomState` has fresh random keys.
fn random() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// Runs `work` to completion on a runtime of its own, on a thread of its own: callable from
/// synchronous code, from inside a test's runtime, and from `Drop` while a panic unwinds.
pub fn blocking<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(work)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A connection to `url`; `Err` only when the server does not answer (a missing service,
/// which a test may skip). A URL that is not PostgreSQL's is a mistake of the run: a panic.
async fn connect(url: &str) -> Result<PgConnection, String> {
    let options =
        PgConnectOptions::from_str(url).unwrap_or_else(|error| panic!("{url} is not a PostgreSQL URL: {error}"));
    match tokio::time::timeout(Duration::from_secs(10), options.connect()).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(format!("PostgreSQL not reachable at {url}: {error}")),
        Err(_) => Err(format!("PostgreSQL not reachable at {url}: no answer within 10 s")),
    }
}

/// `url` with its database (the path) replaced by `name`; the query stays.
pub fn with_database(url: &str, name: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |index| index + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).map_or(url.len(), |index| scheme_end + index);
    let query = url[authority_end..].find('?').map_or("", |index| &url[authority_end + index..]);
    format!("{}/{name}{query}", &url[..authority_end])
}

/// A database made for one test, dropped (`WITH (FORCE)`) when this is dropped, also when the
/// test panics.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDatabase {
    /// A new database on the shared server; `None` after [`skip_or_fail`] when it is
    /// unreachable.
    pub fn try_create() -> Option<TestDatabase> {
        match TestDatabase::create_on(&admin_url()) {
            Ok(database) => Some(database),
            Err(why) => {
                skip_or_fail(&why);
                None
            }
        }
    }

    /// A new database on the server whose maintenance database is at `admin_url`; `Err` when
    /// that server does not answer.
    pub fn create_on(admin_url: &str) -> Result<TestDatabase, String> {
        let admin = admin_url.to_owned();
        let name = format!("portico_test_{:016x}{:016x}", random(), random());
        let created = name.clone();
        blocking(async move {
            let mut connection = connect(&admin).await?;
            // Where the server has ICU, the database sorts text as en-US does, unlike bytes: ids
            // must still page in byte order. Elsewhere the server's default.
            let plain = format!("CREATE DATABASE {created}");
            let mut statement = format!(
                "CREATE DATABASE {created} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
            );
            let mut attempt = 0;
            loop {
                match sqlx::query(sqlx::AssertSqlSafe(statement.clone())).execute(&mut connection).await {
                    Ok(_) => break,
                    // 55006: the template is in use by another CREATE DATABASE for a moment.
                    Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("55006") && attempt < 100 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(sqlx::Error::Database(_)) if statement != plain => statement = plain.clone(),
                    // The server answered and refused: not a missing service, so no skip.
                    Err(error) => panic!("cannot create the test database {created}: {error}"),
                }
            }
            let _ = connection.close().await;
            Ok::<(), String>(())
        })?;
        Ok(TestDatabase { url: with_database(admin_url, &name), name, admin_url: admin_url.to_owned() })
    }

    /// Runs statements (no parameters) on this database.
    pub fn execute(&self, sql: &str) {
        blocking(crate::database::execute::<sqlx::Postgres>(self.url.clone(), sql.to_owned(), Vec::new()));
    }

    /// The first column of every row of `sql`, which must be text (cast it: `x::text`); `NULL`
    /// as "NULL".
    pub fn strings(&self, sql: &str) -> Vec<String> {
        blocking(crate::database::strings::<sqlx::Postgres>(self.url.clone(), sql.to_owned()))
    }

    /// Everything the database holds: every value of every column of every table, text as
    /// text and `bytea` both raw and as hex, each named `<table>.<column>`.
    pub fn contents(&self) -> Vec<(String, Vec<u8>)> {
        let url = self.url.clone();
        blocking(async move {
            let mut connection = connect(&url).await.expect("the test database");
            let columns: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
            )
            .fetch_all(&mut connection)
            .await
            .expect("the columns");
            let mut contents = Vec::new();
            for (table, column, data_type) in columns {
                let name = format!("{table}.{column}");
                if data_type == "bytea" {
                    let sql = format!("SELECT \"{column}\" FROM \"{table}\"");
                    let values: Vec<Option<Vec<u8>>> =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut connection).await.expect("bytea");
                    for value in values.into_iter().flatten() {
                        let hex: String = value.iter().map(|byte| format!("{byte:02x}")).collect();
                        contents.push((name.clone(), value));
                        contents.push((format!("{name} (hex)"), hex.into_bytes()));
                    }
                } else {
                    let sql = format!("SELECT \"{column}\"::text FROM \"{table}\"");
                    let values: Vec<Option<String>> =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut connection).await.expect("text");
                    contents.extend(values.into_iter().flatten().map(|value| (name.clone(), value.into_bytes())));
                }
            }
            let _ = connection.close().await;
            contents
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (name, admin_url) = (self.name.clone(), self.admin_url.clone());
        let dropped = std::panic::catch_unwind(|| {
            blocking(async move {
                let mut admin = connect(&admin_url).await?;
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await.map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok::<(), String>(())
            })
        });
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("warning: cannot drop the test database {}: {error}", self.name),
            Err(_) => eprintln!("warning: dropping the test database {} panicked", self.name),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A server of one's own.

/// A PostgreSQL cluster of its own (initdb) on a spare loopback port, in a temporary
/// directory; stopped and removed when dropped. As root, the server binaries run as the
/// `postgres` user (initdb refuses root).
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl PrivateCluster {
    /// Makes and starts a cluster; `None` after [`skip_or_fail`] when that cannot be done here.
    pub fn try_start() -> Option<PrivateCluster> {
        match PrivateCluster::create().and_then(|cluster| cluster.start().map(|()| cluster)) {
            Ok(cluster) => Some(cluster),
            Err(why) => {
                skip_or_fail(&format!("a private PostgreSQL cluster cannot be made here: {why}"));
                None
            }
        }
    }

    pub fn create() -> Result<PrivateCluster, String> {
        let bin = server_bindir().ok_or("no PostgreSQL server binaries (initdb, pg_ctl) were found")?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("portico-pg-").tempdir().map_err(|error| error.to_string())?;
        if as_postgres {
            run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir.path()))
                .map_err(|error| format!("cannot give the cluster directory to the postgres user: {error}"))?;
        }
        let cluster = PrivateCluster { dir, bin, port: crate::spare_port(), as_postgres };
        let data = cluster.data();
        run(cluster.server_command("initdb").args([
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]))
        .map_err(|error| format!("initdb failed: {error}"))?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The maintenance database's URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn server_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    pub fn start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=40",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        run(self.server_command("pg_ctl").args([
            "-D",
            &self.data(),
            "-l",
            &log,
            "-o",
            &options,
            "-w",
            "-t",
            "60",
            "start",
        ]))
        .map_err(|error| format!("pg_ctl start failed: {error}; log: {}", self.log()))
    }

    /// `mode`: `smart`, `fast` or `immediate` (as a crash).
    pub fn stop(&self, mode: &str) -> Result<(), String> {
        run(self.server_command("pg_ctl").args(["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"]))
            .map_err(|error| format!("pg_ctl stop failed: {error}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if Path::new(&self.data()).join("postmaster.pid").exists() {
            let _ = self.stop("immediate");
        }
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|error| format!("{command:?}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?}: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// `PORTICO_PG_BINDIR`, else the newest /usr/lib/postgresql/*/bin (Debian), else `initdb` on
/// the PATH.
fn server_bindir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PORTICO_PG_BINDIR").map(PathBuf::from) {
        return has_tools(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| has_tools(dir))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}
