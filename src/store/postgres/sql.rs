//! What only PostgreSQL's batched statements need: lists bound as arrays, and statements
//! planned for the batch at hand.

use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;

/// Endpoint ids as a `text[]` parameter.
pub fn id_array<T: AsRef<str>>(ids: &[T]) -> Vec<String> {
    ids.iter().map(|i| i.as_ref().to_owned()).collect()
}

/// A statement over a batch (its rows bound as arrays), planned afresh on every execution
/// for the batch at hand.
///
/// A prepared statement soon runs on PostgreSQL's generic plan, which guesses 10 rows for
/// every array and is kept until the tables' statistics next change. Made while a table is
/// young (a new database, the first minute of a node's life), that plan joins batches
/// against a sequential scan of the whole `delivery` table, and keeps doing so as the
/// table grows: in a fresh benchmark database this was a quarter of the server's CPU. A
/// statement sent unnamed is planned with the batch's own arrays and the table's current
/// size, for the cost of a parse and a plan per batch rather than per row.
///
/// For claims, on the pool that also serves requests. The writer thread's batches are
/// prepared once instead, on connections whose planner cannot make that plan
/// (`writer::PLANNER`).
pub fn batch_query(sql: &str) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(sql).persistent(false)
}
