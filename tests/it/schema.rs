//! The two backends' schemas have the same tables, columns and indexes, by name: the
//! migrations differ in types only, so a migration added to one backend alone fails here.

use std::collections::BTreeSet;

use hookd::store::postgres::{PgStore, PoolSettings};
use hookd::store::sqlite::SqliteStore;
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::pg::TestDatabase;

/// `table`, `table.column` and `table index name`, one entry each.
type Schema = BTreeSet<String>;

/// sqlx's own bookkeeping, not hookd's schema.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Tables, columns and indexes one backend has by design, each with the reason.
const ONLY_ON_POSTGRES: &[&str] = &[
    // Heartbeats of the nodes sharing the database and the node holding each claim, so that
    // a dead node's claims are given back within seconds. SQLite is one process: no peer.
    "node",
    "node.id",
    "node.address",
    "node.version",
    "node.started_at",
    "node.last_heartbeat",
    "delivery.claimed_by",
    "delivery delivery_claimed_by",
    // eventIds unique per application, for the messages that have one. SQLite enforces the
    // same rule with the message table's UNIQUE (app_id, event_id), which it cannot drop
    // without rebuilding the table; a second index there would cost every message insert.
    "message message_event_id",
];

#[tokio::test]
async fn both_backends_have_the_same_tables_columns_and_indexes() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let mut postgres = postgres_schema(&database).await;
    for index in ONLY_ON_POSTGRES {
        assert!(
            postgres.remove(*index),
            "{index} is gone: update ONLY_ON_POSTGRES"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_schema(&dir.path().join("schema.db")).await;
    assert!(
        sqlite.contains("delivery.next_attempt_at") && sqlite.contains("delivery delivery_due"),
        "the schema was not read: {sqlite:?}"
    );
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the migrations disagree: only on SQLite {only_sqlite:?}, only on PostgreSQL \
         {only_postgres:?}"
    );
}

async fn sqlite_schema(path: &std::path::Path) -> Schema {
    SqliteStore::open_path(path, 1).await.unwrap().close().await;
    let url = format!("sqlite://{}", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         AND name <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema: Schema = tables.iter().cloned().collect();
    for table in &tables {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
            .bind(table)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        schema.extend(columns.into_iter().map(|c| format!("{table}.{c}")));
    }
    // Indexes created by name; those SQLite makes for a PRIMARY KEY or UNIQUE constraint
    // are `sqlite_autoindex_*`, as PostgreSQL's are named after their constraint.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT tbl_name, name FROM sqlite_master
         WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    schema.extend(indexes.into_iter().map(|(t, i)| format!("{t} {i}")));
    conn.close().await.unwrap();
    schema
}

async fn postgres_schema(database: &TestDatabase) -> Schema {
    let settings = PoolSettings {
        min_connections: 0,
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(5),
    };
    PgStore::connect(&database.url, settings)
        .await
        .unwrap()
        .close()
        .await;
    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut schema: Schema = columns.iter().map(|(t, _)| t.clone()).collect();
    schema.extend(columns.iter().map(|(t, c)| format!("{t}.{c}")));
    // Indexes created by name, not those behind a PRIMARY KEY or UNIQUE constraint.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.tablename::text, i.indexname::text FROM pg_indexes i
         WHERE i.schemaname = 'public' AND i.tablename <> $1
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    schema.extend(indexes.into_iter().map(|(t, i)| format!("{t} {i}")));
    conn.close().await.unwrap();
    schema
}
