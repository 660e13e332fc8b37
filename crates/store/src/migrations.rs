//! The schema's migrations for each engine: the engine's own (`migrations/sqlite`,
//! `migrations/postgres`, whose files are never edited: databases recorded their checksums), then
//! the shared ones (`migrations/shared`), written once in SQLite's SQL and rendered for the
//! engine when a store opens. migrations/shared/README.md says how to write one.

use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, Migrator};

use crate::sql::Dialect;

/// The migrations written once for both engines.
static SHARED: Migrator = sqlx::migrate!("./migrations/shared");

/// The engine's `own` migrations and the shared ones rendered for its `dialect`.
pub(crate) fn for_engine(own: &Migrator, dialect: &Dialect) -> Migrator {
    with_shared(own, &SHARED, dialect)
}

fn with_shared(own: &Migrator, shared: &Migrator, dialect: &Dialect) -> Migrator {
    let rendered = shared.iter().map(|migration| {
        let sql = sqlx::AssertSqlSafe(render(migration.sql.as_str(), dialect)).into_sql_str();
        // The checksum is the rendered text's: what the engine runs is what it records.
        Migration::new(migration.version, migration.description.clone(), migration.migration_type, sql, migration.no_tx)
    });
    Migrator::with_migrations(own.iter().cloned().chain(rendered).collect())
}

/// Shared migration text (SQLite's SQL) for `dialect`: the word `BLOB` becomes its byte string
/// type and `COLLATE BINARY` its byte-order collation. Comments, string literals and quoted
/// names stay as written, and so does every word that the dialect spells alike: SQLite gets
/// the text unchanged.
pub(crate) fn render(sql: &str, dialect: &Dialect) -> String {
    let mut rendered = String::with_capacity(sql.len() + sql.len() / 8);
    let mut rest = sql;
    // The word before this one, when only blanks stand between them.
    let mut previous_word = "";
    while let Some(first) = rest.chars().next() {
        let length = if is_word_char(first) {
            let length = rest.find(|c| !is_word_char(c)).unwrap_or(rest.len());
            let word = &rest[..length];
            let replacement = if word.eq_ignore_ascii_case("BLOB") {
                dialect.bytes_type
            } else if word.eq_ignore_ascii_case("BINARY") && previous_word.eq_ignore_ascii_case("COLLATE") {
                dialect.byte_order_collation
            } else {
                word
            };
            rendered.push_str(if replacement.eq_ignore_ascii_case(word) { word } else { replacement });
            previous_word = word;
            rest = &rest[length..];
            continue;
        } else if first == '\'' || first == '"' {
            // A doubled quote inside reads as two literals back to back: skipped all the same.
            rest[1..].find(first).map_or(rest.len(), |end| end + 2)
        } else if rest.starts_with("--") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |end| end + 2)
        } else {
            first.len_utf8()
        };
        if !first.is_whitespace() {
            previous_word = "";
        }
        rendered.push_str(&rest[..length]);
        rest = &rest[length..];
    }
    rendered
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use portico_testkit::pg::TestDatabase;
    use sqlx::migrate::{Migration, Migrator};
    use sqlx::postgres::PgPool;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

    use super::{render, with_shared};
    use crate::sql::{Dialect, POSTGRES, SQLITE};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    /// A shared migration that the schema does not have (0004, a table of ids, bytes and
    /// words to leave alone), read as `sqlx::migrate!` reads migrations/shared.
    async fn sample() -> Migrator {
        Migrator::new(Path::new(FIXTURES).join("shared-migrations")).await.unwrap()
    }

    fn sample_sql() -> String {
        std::fs::read_to_string(Path::new(FIXTURES).join("shared-migrations/0004_attachments.sql")).unwrap()
    }

    /// An engine's `own` migrations and the sample after them, rendered for `dialect`; and the
    /// sample as written.
    async fn own_and_sample(own: &Migrator, dialect: &Dialect) -> (Migrator, Migration) {
        let sample = sample().await;
        let migrator = with_shared(own, &sample, dialect);
        let versions: Vec<i64> = migrator.iter().map(|migration| migration.version).collect();
        assert_eq!(versions, [1, 2, 3, 4]);
        assert_eq!(migrator.iter().last().unwrap().description, "attachments");
        let written = sample.iter().next().unwrap().clone();
        (migrator, written)
    }

    #[test]
    fn sqlite_gets_a_shared_migration_as_written() {
        let sql = sample_sql();
        assert_eq!(render(&sql, &SQLITE), sql);
    }

    #[test]
    fn postgres_gets_bytea_and_the_c_collation() {
        let expected = std::fs::read_to_string(Path::new(FIXTURES).join("0004_attachments.postgres.sql")).unwrap();
        assert_eq!(render(&sample_sql(), &POSTGRES), expected);
    }

    #[test]
    fn only_words_outside_quotes_and_comments_are_rendered() {
        let postgres = &POSTGRES;
        assert_eq!(render("a BLOB, b blob, c blobs, d my_blob", postgres), "a BYTEA, b BYTEA, c blobs, d my_blob");
        assert_eq!(render("x TEXT COLLATE\n  binary, y BINARY", postgres), "x TEXT COLLATE\n  \"C\", y BINARY");
        assert_eq!(render("'BLOB' \"BLOB\" 'it''s BLOB'", postgres), "'BLOB' \"BLOB\" 'it''s BLOB'");
        assert_eq!(render("-- BLOB\nBLOB /* BLOB */ BLOB", postgres), "-- BLOB\nBYTEA /* BLOB */ BYTEA");
        assert_eq!(render("COLLATE /* x */ BINARY, 'open BLOB", postgres), "COLLATE /* x */ BINARY, 'open BLOB");
    }

    #[tokio::test]
    async fn a_shared_migration_runs_on_sqlite_as_written_after_its_own() {
        let (migrator, written) = own_and_sample(&crate::sqlite::OWN_MIGRATIONS, &SQLITE).await;
        assert_eq!(migrator.iter().last().unwrap().checksum, written.checksum);

        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new().filename(dir.path().join("portico.db")).create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        migrator.run(&pool).await.unwrap();
        // Again, as at the next start: the recorded checksums match.
        migrator.run(&pool).await.unwrap();
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name || ' ' || type FROM pragma_table_info('attachments') ORDER BY cid")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            columns,
            ["id TEXT", "tenant_id TEXT", "name TEXT", "content BLOB", "blob BLOB", "created_at BIGINT"]
        );
        pool.close().await;
    }

    #[tokio::test]
    async fn a_shared_migration_runs_on_postgres_rendered_after_its_own() {
        let (migrator, written) = own_and_sample(&crate::postgres::OWN_MIGRATIONS, &POSTGRES).await;
        let added = migrator.iter().last().unwrap();
        assert_eq!(added.sql.as_str(), render(written.sql.as_str(), &POSTGRES));
        // The checksum is the rendered text's, which is what the database records.
        assert_ne!(added.checksum, written.checksum);

        let Some(database) = TestDatabase::try_create() else { return };
        let pool = PgPool::connect(&database.url).await.unwrap();
        migrator.run(&pool).await.unwrap();
        migrator.run(&pool).await.unwrap();
        pool.close().await;
        let columns = database.strings(
            "SELECT column_name || ' ' || data_type || ' ' || coalesce(collation_name, '-') \
             FROM information_schema.columns WHERE table_name = 'attachments' ORDER BY ordinal_position",
        );
        let expected =
            ["id text C", "tenant_id text C", "name text -", "content bytea -", "blob bytea -", "created_at bigint -"];
        assert_eq!(columns, expected);
    }
}
