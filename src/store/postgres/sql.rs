//! SQL fragments that only PostgreSQL spells this way: lists bound as arrays, JSON text
//! read with `jsonb` operators. Row decoding is shared with SQLite ([`crate::store::rows`]).

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, QueryBuilder};

use super::micros;
use crate::store::MessageFilter;

/// Appends the message list filters, for the `message` table under `alias`.
pub fn push_message_filter(
    qb: &mut QueryBuilder<'_, Postgres>,
    filter: &MessageFilter,
    alias: &str,
) {
    if let Some(types) = &filter.event_types {
        let types: Vec<String> = types.iter().map(|t| t.as_str().to_owned()).collect();
        qb.push(format!(" AND {alias}.event_type = ANY("))
            .push_bind(types)
            .push(")");
    }
    if let Some(channel) = &filter.channel {
        qb.push(format!(" AND ({alias}.channels::jsonb) ? "))
            .push_bind(channel.as_str().to_owned());
    }
    if let Some(before) = filter.before {
        qb.push(format!(" AND {alias}.created_at < "))
            .push_bind(micros(before));
    }
    if let Some(after) = filter.after {
        qb.push(format!(" AND {alias}.created_at > "))
            .push_bind(micros(after));
    }
}

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
pub fn batch_query(sql: &str) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(sql).persistent(false)
}
