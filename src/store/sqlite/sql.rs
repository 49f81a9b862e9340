//! SQL fragments that only SQLite spells this way: lists bound as one JSON text parameter
//! and read back with `json_each`. Row decoding is shared with PostgreSQL
//! ([`crate::store::rows`]).

use sqlx::{QueryBuilder, Sqlite};

use crate::domain::time::to_micros;
use crate::store::MessageFilter;
use crate::store::rows::to_json;

/// A JSON array of ids, bound as one parameter and read back with `json_each`.
pub fn id_list<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    to_json(&ids.into_iter().collect::<Vec<_>>())
}

/// Appends the message list filters, for the `message` table under `alias`.
pub fn push_message_filter(qb: &mut QueryBuilder<'_, Sqlite>, filter: &MessageFilter, alias: &str) {
    if let Some(types) = &filter.event_types {
        qb.push(format!(
            " AND {alias}.event_type IN (SELECT value FROM json_each("
        ))
        .push_bind(to_json(types))
        .push("))");
    }
    if let Some(channel) = &filter.channel {
        qb.push(format!(
            " AND EXISTS (SELECT 1 FROM json_each({alias}.channels) WHERE value = "
        ))
        .push_bind(channel.as_str().to_owned());
        qb.push(")");
    }
    if let Some(before) = filter.before {
        qb.push(format!(" AND {alias}.created_at < "))
            .push_bind(to_micros(before));
    }
    if let Some(after) = filter.after {
        qb.push(format!(" AND {alias}.created_at > "))
            .push_bind(to_micros(after));
    }
}
