//! Replays, recoveries and dead letters: the steps of their background tasks and the
//! dead-letter list (see [`ReplayStore`]).
//!
//! Replays walk message ids. A message id is a ULID drawn when the message is accepted, so
//! its time part is the message's creation time, give or take the clock differences
//! between nodes (which leases already require to be far below a minute; ids are only ever
//! bumped forward past a greater one). A range of creation times is therefore first narrowed
//! to a range of ids with [`ID_SLACK`] either side, which an index walks, and then checked
//! on `created_at` exactly: a step never scans the messages before `since` or far after
//! `until`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::TimeDelta;
use ulid::Ulid;

use super::push_message_filter;
use crate::domain::time::from_micros;
use crate::domain::{AppId, Channel, EndpointId, EventId, EventTypeName, MessageId, Timestamp};
use crate::store::engine::Engine;
use crate::store::rows::{self, ENDPOINT_COLUMNS, StoredRow};
use crate::store::sql::{Conn, Sql};
use crate::store::{
    DeadLetter, FailedFilter, PageQuery, ReplayFilter, ReplayStep, ReplayStore, Result, StoreError,
};

/// How far a message id's time may stray from its creation time (see the module docs).
const ID_SLACK: TimeDelta = TimeDelta::minutes(10);

/// Queues deliveries again, now, as manual attempts with a fresh retry schedule; parked
/// (no due time) if their endpoint is disabled, as its other pending deliveries are.
/// `$1` is now; followed by the statement's `WHERE`.
const REQUEUE: &str = "UPDATE delivery SET status = 1, attempts = 0, lease_until = NULL,
     trigger_type = 1, updated_at = $1,
     next_attempt_at = CASE WHEN (SELECT e.disabled FROM endpoint e
       WHERE e.id = delivery.endpoint_id) THEN NULL ELSE $1 END";

/// The smallest message id with a time part at `at` less [`ID_SLACK`] (`high`: the greatest
/// at `at` plus the slack).
fn id_bound(at: Timestamp, high: bool) -> String {
    let at = if high { at + ID_SLACK } else { at - ID_SLACK };
    let ms = u64::try_from(at.timestamp_millis())
        .unwrap_or(0)
        .min((1 << 48) - 1);
    let random = if high { u128::MAX } else { 0 };
    format!("msg_{}", Ulid::from_parts(ms, random))
}

/// Appends `AND {column} > after AND {column} < high bound` for a walk by message id.
fn push_id_range(
    sql: &mut Sql,
    column: &str,
    since: Timestamp,
    until: Option<Timestamp>,
    after: Option<&MessageId>,
) {
    let low = id_bound(since, false);
    let after = match after {
        Some(after) if after.as_str() > low.as_str() => after.as_str().to_owned(),
        _ => low,
    };
    sql.push(&format!(" AND {column} > ")).push_bind(after);
    if let Some(until) = until {
        sql.push(&format!(" AND {column} < "))
            .push_bind(id_bound(until, true));
    }
}

/// `None` once a step found fewer than `limit`: nothing is left after it.
fn next_step(found: usize, limit: usize, last: Option<String>) -> Option<String> {
    if found < limit { None } else { last }
}

/// Appends the [`FailedFilter`] for `delivery d` (joined with `message m` when it filters
/// by event type) of application `app`, failed deliveries only.
fn push_failed<E: Engine>(sql: &mut Sql, app: &AppId, filter: &FailedFilter) {
    // `d.status = 2` written out, not bound: it is the predicate of the `delivery_failed`
    // partial index, which the planner uses only if the query implies it.
    sql.push(" WHERE d.app_id = ")
        .push_bind(app.as_str())
        .push(" AND d.status = 2");
    if let Some(endpoint) = &filter.endpoint {
        sql.push(" AND d.endpoint_id = ")
            .push_bind(endpoint.as_str());
    }
    if let Some(since) = filter.since {
        sql.push(" AND d.created_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        sql.push(" AND d.created_at < ").push_bind(until);
    }
    if filter.event_types.is_some() {
        let by_type = crate::store::MessageFilter {
            event_types: filter.event_types.clone(),
            ..Default::default()
        };
        push_message_filter::<E>(sql, &by_type, "m");
    }
}

#[async_trait]
impl<E: Engine> ReplayStore for E {
    async fn replay_step(
        &self,
        endpoint: &EndpointId,
        filter: &ReplayFilter,
        after: Option<&MessageId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<ReplayStep> {
        let statuses: BTreeSet<i64> = filter.statuses.iter().map(|s| s.code()).collect();
        if statuses.is_empty() {
            return Ok(ReplayStep {
                sent: 0,
                last: None,
            });
        }
        let mut select = Sql::new(
            "SELECT d.id, d.msg_id FROM delivery d JOIN message m ON m.id = d.msg_id
             WHERE d.endpoint_id = ",
        );
        select.push_bind(endpoint.as_str());
        push_id_range(&mut select, "d.msg_id", filter.since, filter.until, after);
        select.push(" AND m.created_at >= ").push_bind(filter.since);
        if let Some(until) = filter.until {
            select.push(" AND m.created_at < ").push_bind(until);
        }
        select
            .push(" AND d.status IN (")
            .push_list(statuses.iter().copied())
            .push(")");
        if let Some(class) = filter.status_code_class {
            let low = i64::from(class);
            let high = if class == 0 { 1 } else { low + 100 };
            // The latest attempt's response status (through `attempt_by_msg`).
            let latest = "(SELECT a.response_status_code FROM attempt a
                 WHERE a.msg_id = d.msg_id AND a.endpoint_id = d.endpoint_id
                 ORDER BY a.id DESC LIMIT 1)";
            select
                .push(&format!(" AND {latest} >= "))
                .push_bind(low)
                .push(&format!(" AND {latest} < "))
                .push_bind(high);
        }
        push_message_filter::<E>(&mut select, &filter.messages, "m");
        select
            .push(" ORDER BY d.msg_id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));

        let mut tx = self.writes().begin().await?;
        let found = tx.rows(&select).await?;
        let mut ids = Vec::with_capacity(found.len());
        let mut last = None;
        for row in &found {
            ids.push(row.int("id")?);
            last = Some(row.text("msg_id")?);
        }
        let mut sent = 0;
        if !ids.is_empty() {
            let mut requeue = Sql::new(REQUEUE).bind(now);
            requeue
                .push(" WHERE id IN (")
                .push_list(ids.iter().copied())
                .push(") AND status IN (")
                .push_list(statuses.iter().copied())
                .push(")");
            sent = tx.exec(&requeue).await?;
            if sent > 0 {
                E::notify_due(&mut tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ReplayStep {
            sent,
            last: next_step(found.len(), limit, last),
        })
    }

    async fn replay_missing_step(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Option<Timestamp>,
        after: Option<&MessageId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<ReplayStep> {
        let mut tx = self.writes().begin().await?;
        // Not to be deleted before this commits (`Engine::KEY_SHARE`).
        let get = Sql::new(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE id = $1{}",
            E::KEY_SHARE
        ))
        .bind(endpoint.as_str());
        let Some(row) = tx.row(&get).await? else {
            return Err(StoreError::NotFound);
        };
        let endpoint = rows::endpoint(&row, self.secrets())?;
        let mut select = Sql::new(
            "SELECT m.id, m.event_type, m.channels, m.deliver_at FROM message m
             WHERE m.app_id = ",
        );
        select.push_bind(endpoint.app_id.as_str());
        push_id_range(&mut select, "m.id", since, until, after);
        select.push(" AND m.created_at >= ").push_bind(since);
        if let Some(until) = until {
            select.push(" AND m.created_at < ").push_bind(until);
        }
        select
            .push(
                " AND NOT EXISTS (SELECT 1 FROM delivery d
                 WHERE d.msg_id = m.id AND d.endpoint_id = ",
            )
            .push_bind(endpoint.id.as_str())
            .push(") ORDER BY m.id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .push(E::KEY_SHARE);
        let found = tx.rows(&select).await?;

        let mut insert = Sql::new(
            "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, attempts,
             next_attempt_at, trigger_type, created_at, updated_at) VALUES ",
        );
        let (mut wanted, mut last) = (0, None);
        for row in &found {
            let id = row.text("id")?;
            let event_type = EventTypeName::from_stored(row.text("event_type")?);
            let channels: Option<Vec<Channel>> = match row.opt_text("channels")? {
                Some(text) => Some(
                    serde_json::from_str::<Vec<String>>(&text)
                        .map_err(|e| StoreError::Corrupt(format!("channels: {e}")))?
                        .into_iter()
                        .map(Channel::from_stored)
                        .collect(),
                ),
                None => None,
            };
            if endpoint
                .subscription
                .accepts(&event_type, channels.as_deref())
            {
                // Due at once, or at its `deliverAt` if that is still ahead; parked if
                // the endpoint is disabled.
                let due = match row.opt_int("deliver_at")?.map(from_micros) {
                    _ if endpoint.disabled => None,
                    Some(at) if at > now => Some(at),
                    _ => Some(now),
                };
                insert.push(if wanted == 0 { "(" } else { ", (" });
                insert
                    .push_bind(id.as_str())
                    .push(", ")
                    .push_bind(endpoint.id.as_str())
                    .push(", ")
                    .push_bind(endpoint.app_id.as_str())
                    .push(", 1, 0, ")
                    .push_bind(due)
                    .push(", 1, ")
                    .push_bind(now)
                    .push(", ")
                    .push_bind(now)
                    .push(")");
                wanted += 1;
            }
            last = Some(id);
        }
        let mut sent = 0;
        if wanted > 0 {
            // A delivery created meanwhile (a resend) is left as it is.
            insert.push(" ON CONFLICT (msg_id, endpoint_id) DO NOTHING");
            sent = tx.exec(&insert).await?;
            if sent > 0 {
                E::notify_due(&mut tx).await?;
            }
        }
        tx.commit().await?;
        Ok(ReplayStep {
            sent,
            last: next_step(found.len(), limit, last),
        })
    }

    async fn requeue_failed_step(
        &self,
        app: &AppId,
        filter: &FailedFilter,
        after: Option<i64>,
        limit: usize,
        now: Timestamp,
    ) -> Result<ReplayStep> {
        let mut select = Sql::new("SELECT d.id FROM delivery d");
        if filter.event_types.is_some() {
            select.push(" JOIN message m ON m.id = d.msg_id");
        }
        push_failed::<E>(&mut select, app, filter);
        if let Some(after) = after {
            select.push(" AND d.id > ").push_bind(after);
        }
        select
            .push(" ORDER BY d.id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let mut tx = self.writes().begin().await?;
        let found = tx.rows(&select).await?;
        let ids = found
            .iter()
            .map(|row| row.int("id"))
            .collect::<Result<Vec<i64>>>()?;
        let sent = requeue_ids(&mut *tx, None, &ids, now).await?;
        tx.commit().await?;
        Ok(ReplayStep {
            sent,
            last: next_step(ids.len(), limit, ids.last().map(i64::to_string)),
        })
    }

    async fn requeue_failed(&self, app: &AppId, ids: &[i64], now: Timestamp) -> Result<u64> {
        let mut tx = self.writes().begin().await?;
        let mut sent = 0;
        // Well within both engines' parameter limits.
        for chunk in ids.chunks(1000) {
            sent += requeue_ids(&mut *tx, Some(app), chunk, now).await?;
        }
        tx.commit().await?;
        Ok(sent)
    }

    async fn list_dead_letters(
        &self,
        app: &AppId,
        filter: &FailedFilter,
        page: &PageQuery,
    ) -> Result<Vec<DeadLetter>> {
        let mut list = Sql::new(
            "SELECT d.id, d.msg_id, d.endpoint_id, d.attempts, d.created_at, d.updated_at,
             m.event_type, m.event_id FROM delivery d JOIN message m ON m.id = d.msg_id",
        );
        push_failed::<E>(&mut list, app, filter);
        if let Some((bound, greater)) = page.key_bound() {
            let bound: i64 = bound
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("a dead-letter key: {bound:?}")))?;
            list.push(if greater {
                " AND d.id > "
            } else {
                " AND d.id < "
            })
            .push_bind(bound);
        }
        list.push(if page.scans_ascending() {
            " ORDER BY d.id ASC LIMIT "
        } else {
            " ORDER BY d.id DESC LIMIT "
        })
        .push_bind(page.fetch());
        let found = self.reads().acquire().await?.rows(&list).await?;
        rows::all(&found, dead_letter)
    }
}

/// Queues the failed deliveries among `ids` (of `app`, if given) again; returns how many.
async fn requeue_ids(
    conn: &mut impl Conn,
    app: Option<&AppId>,
    ids: &[i64],
    now: Timestamp,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut requeue = Sql::new(REQUEUE).bind(now);
    requeue.push(" WHERE status = 2 AND id IN (");
    requeue.push_list(ids.iter().copied()).push(")");
    if let Some(app) = app {
        requeue.push(" AND app_id = ").push_bind(app.as_str());
    }
    let sent = conn.exec(&requeue).await?;
    Ok(sent)
}

fn dead_letter(row: &impl StoredRow) -> Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.int("id")?,
        msg_id: MessageId::from_stored(row.text("msg_id")?),
        event_type: EventTypeName::from_stored(row.text("event_type")?),
        event_id: row.opt_text("event_id")?.map(EventId::from_stored),
        endpoint_id: EndpointId::from_stored(row.text("endpoint_id")?),
        attempts: row.int("attempts")?,
        created_at: from_micros(row.int("created_at")?),
        failed_at: from_micros(row.int("updated_at")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_bounds_enclose_the_ids_drawn_in_the_range() {
        let at = crate::domain::time::now();
        let id = MessageId::generate_after(None);
        assert!(id_bound(at, false).as_str() < id.as_str());
        assert!(id.as_str() < id_bound(at, true).as_str());
        assert!(id_bound(at + TimeDelta::hours(1), false).as_str() > id.as_str());
        // Times before the epoch or past the ULID range clamp rather than wrap.
        let early = from_micros(-1_000_000_000_000);
        assert_eq!(
            id_bound(early, false),
            format!("msg_{}", Ulid::from_parts(0, 0))
        );
    }

    #[test]
    fn a_short_step_is_the_last() {
        assert_eq!(next_step(3, 5, Some("x".into())), None);
        assert_eq!(next_step(5, 5, Some("x".into())), Some("x".into()));
    }
}
