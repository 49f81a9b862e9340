//! SQL fragments that only PostgreSQL spells this way: lists bound as arrays, JSON text
//! read with `jsonb` operators. Row decoding is shared with SQLite ([`crate::store::rows`]).

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
