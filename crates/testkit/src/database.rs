//! A Portico database on either engine, for tests that run on SQLite and on PostgreSQL alike:
//! [`Database`], one made for a test (a SQLite file in a temporary directory of its own, or a
//! [`TestDatabase`] on the shared server) or one that a store already uses, with the statements
//! a test runs beside the store.

use tempfile::TempDir;

use crate::pg::{TestDatabase, blocking};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine of a database URL: `sqlite:`, `postgres:` or `postgresql:`.
    pub fn of_url(url: &str) -> Engine {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Engine::Sqlite,
            Some("postgres" | "postgresql") => Engine::Postgres,
            _ => panic!("{url} is not a SQLite or PostgreSQL URL"),
        }
    }
}

/// A database of one engine; one made for a test goes away when this is dropped.
pub struct Database {
    url: String,
    engine: Engine,
    _owned: Owned,
}

/// What goes away with a [`Database`].
enum Owned {
    /// A database made elsewhere stays.
    Nothing,
    /// The SQLite file's directory; the file is made by the first store that opens it.
    Directory {
        _dir: TempDir,
    },
    Postgres {
        _database: TestDatabase,
    },
}

impl Database {
    /// A SQLite file in a new temporary directory.
    pub fn sqlite() -> Database {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("portico.db").display());
        Database { url, engine: Engine::Sqlite, _owned: Owned::Directory { _dir: dir } }
    }

    /// A database on the shared PostgreSQL server; `None` after [`crate::skip_or_fail`] when the
    /// server is unreachable.
    pub fn try_postgres() -> Option<Database> {
        let database = TestDatabase::try_create()?;
        Some(Database {
            url: database.url.clone(),
            engine: Engine::Postgres,
            _owned: Owned::Postgres { _database: database },
        })
    }

    /// The database at `url`, which someone else made and keeps (a Portico's store, say).
    pub fn at(url: &str) -> Database {
        Database { url: url.to_owned(), engine: Engine::of_url(url), _owned: Owned::Nothing }
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// What a store opens: `sqlite://<file>?mode=rwc`, `postgres://…/<database>`, or the URL
    /// given to [`Database::at`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql` on a connection of its own: statements without parameters, or one statement
    /// whose text parameters are `$1`, `$2`, … (both engines take that form).
    pub fn execute(&self, sql: &str, parameters: &[&str]) {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        let parameters: Vec<String> = parameters.iter().map(|parameter| (*parameter).to_owned()).collect();
        match self.engine {
            Engine::Sqlite => blocking(execute::<sqlx::Sqlite>(url, sql, parameters)),
            Engine::Postgres => blocking(execute::<sqlx::Postgres>(url, sql, parameters)),
        }
    }

    /// The first column of every row of `sql`, which must be text (cast it: `CAST(x AS TEXT)`);
    /// `NULL` as "NULL".
    pub fn strings(&self, sql: &str) -> Vec<String> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        match self.engine {
            Engine::Sqlite => blocking(strings::<sqlx::Sqlite>(url, sql)),
            Engine::Postgres => blocking(strings::<sqlx::Postgres>(url, sql)),
        }
    }
}

/// [`Database::execute`] on a new connection to `url`.
pub(crate) async fn execute<DB>(url: String, sql: String, parameters: Vec<String>)
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut connection = connect::<DB>(&url).await;
    let executed = if parameters.is_empty() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(&mut connection).await
    } else {
        let mut query = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql.clone()));
        for parameter in parameters {
            query = query.bind(parameter);
        }
        query.execute(&mut connection).await
    };
    executed.unwrap_or_else(|error| panic!("{sql}: {error}"));
    let _ = sqlx::Connection::close(connection).await;
}

/// [`Database::strings`] on a new connection to `url`.
pub(crate) async fn strings<DB>(url: String, sql: String) -> Vec<String>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    (Option<String>,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut connection = connect::<DB>(&url).await;
    let values: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_all(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    let _ = sqlx::Connection::close(connection).await;
    values.into_iter().map(|value| value.unwrap_or_else(|| "NULL".to_owned())).collect()
}

async fn connect<DB: sqlx::Database>(url: &str) -> DB::Connection {
    <DB::Connection as sqlx::Connection>::connect(url).await.unwrap_or_else(|error| panic!("{url}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::{Database, Engine};

    #[test]
    fn a_sqlite_database_takes_statements_with_and_without_parameters() {
        let database = Database::sqlite();
        assert_eq!(database.engine(), Engine::Sqlite);
        database.execute("CREATE TABLE notes (id TEXT, body BLOB); INSERT INTO notes VALUES ('a', NULL)", &[]);
        database.execute("INSERT INTO notes (id) VALUES ($1), ($2)", &["b", "c"]);
        assert_eq!(database.strings("SELECT id FROM notes ORDER BY id"), ["a", "b", "c"]);
        assert_eq!(database.strings("SELECT body FROM notes WHERE id = 'a'"), ["NULL"]);

        let elsewhere = Database::at(database.url());
        assert_eq!(elsewhere.strings("SELECT CAST(COUNT(*) AS TEXT) FROM notes"), ["3"]);
        drop(elsewhere);
        assert_eq!(database.strings("SELECT CAST(COUNT(*) AS TEXT) FROM notes"), ["3"], "still there");
    }

    #[test]
    fn a_postgres_database_takes_the_same_statements() {
        let Some(database) = Database::try_postgres() else { return };
        assert_eq!(database.engine(), Engine::Postgres);
        database.execute("CREATE TABLE notes (id TEXT, body BYTEA); INSERT INTO notes VALUES ('a', NULL)", &[]);
        database.execute("INSERT INTO notes (id) VALUES ($1), ($2)", &["b", "c"]);
        assert_eq!(database.strings("SELECT id FROM notes ORDER BY id"), ["a", "b", "c"]);
        assert_eq!(database.strings("SELECT CAST(body AS TEXT) FROM notes WHERE id = 'a'"), ["NULL"]);
    }

    #[test]
    fn the_engine_comes_from_the_scheme() {
        assert_eq!(Engine::of_url("sqlite://data/portico.db"), Engine::Sqlite);
        assert_eq!(Engine::of_url("postgres://db/portico"), Engine::Postgres);
        assert_eq!(Engine::of_url("postgresql://db/portico"), Engine::Postgres);
        assert!(std::panic::catch_unwind(|| Engine::of_url("mysql://db/portico")).is_err());
    }
}
