//! The store's queries, each written once: every store trait but the hot path's
//! ([`super::QueueStore`]) is implemented here for any [`Engine`], and so for SQLite and
//! PostgreSQL alike. Where the engines differ, the query asks its [`Engine`].

mod admin;
mod applications;
mod deliveries;
mod endpoints;
mod entities;
mod event_types;
mod messages;
mod monitors;
mod operational;
mod replays;
mod secrets;
pub(crate) mod sources;
mod stats;
mod tasks;
mod tokens;

pub(crate) use endpoints::PARK_OR_UNPARK;

use super::engine::Engine;
use super::rows::StoredRow;
use super::sql::{Conn, Sql};
use super::{MessageFilter, Result, StoreError};
use crate::domain::ResourceKey;

/// Removes a message's payload, and with it its expiry (so it leaves the expiry index);
/// followed by the statement's `WHERE`. Expunging, payload expiry and purges all use it, so a
/// payload removed any way reads the same.
pub(crate) const EXPUNGE_PAYLOAD: &str =
    "UPDATE message SET payload = NULL, payload_expires_at = NULL";

/// The column a resource key looks in, and the value it looks for.
fn key_column<I: AsRef<str>>(key: &ResourceKey<I>) -> (&'static str, &str) {
    match key {
        ResourceKey::Id(id) => ("id", id.as_ref()),
        ResourceKey::Uid(uid) => ("uid", uid.as_str()),
    }
}

/// The greatest id a `SELECT max(id) AS id …` finds, if any: what a new id of that list is
/// drawn after.
async fn greatest_id(conn: &mut impl Conn, max: Sql) -> Result<Option<String>> {
    match conn.row(&max).await? {
        Some(row) => row.opt_text("id"),
        None => Ok(None),
    }
}

/// `NotFound` when a statement meant to change one row changed none.
fn changed_one(rows: u64) -> Result<()> {
    if rows == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Appends the message list filters, for the `message` table under `alias`.
fn push_message_filter<E: Engine>(sql: &mut Sql, filter: &MessageFilter, alias: &str) {
    match &filter.event_types {
        None => {}
        // No name matches an empty set (and `IN ()` is not SQL).
        Some(types) if types.is_empty() => {
            sql.push(" AND FALSE");
        }
        Some(types) => {
            sql.push(&format!(" AND {alias}.event_type IN ("))
                .push_list(types.iter().map(|t| t.as_str()))
                .push(")");
        }
    }
    if let Some(channel) = &filter.channel {
        sql.push(" AND ");
        E::push_array_holds(sql, &format!("{alias}.channels"), channel.as_str());
    }
    if let Some(before) = filter.before {
        sql.push(&format!(" AND {alias}.created_at < "))
            .push_bind(before);
    }
    if let Some(after) = filter.after {
        sql.push(&format!(" AND {alias}.created_at > "))
            .push_bind(after);
    }
    if let Some(at) = filter.deliver_after {
        // `IS NOT NULL` is the predicate of the `message_scheduled` index.
        sql.push(&format!(
            " AND {alias}.deliver_at IS NOT NULL AND {alias}.deliver_at > "
        ))
        .push_bind(at);
    }
}
