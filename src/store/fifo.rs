//! FIFO endpoints (`ordering: "fifo"`): one delivery at a time, in queue order.
//!
//! Each FIFO endpoint has a line: `endpoint.fifo_head` names the delivery at its head, the
//! only one of its deliveries that is due, in flight or waiting for a retry; the others wait
//! *parked*, pending with a NULL `next_attempt_at`, so they are never scanned by a claim
//! (as a disabled endpoint's are). The line's order is the deliveries' ids: the order they
//! were queued, which on both engines is the order their messages were accepted.
//!
//! Three things keep the line, with no change to the claim of other endpoints:
//! - Ingest writes a FIFO endpoint's new deliveries parked, never claimed at once, then
//!   [promotes](PROMOTE): if the line has no head, its first parked delivery becomes the head,
//!   due now.
//! - When the head's attempt ends it for good (delivered, retries exhausted, 410 Gone), the
//!   same write promotes the next. A retry keeps it at the head: nothing behind it moves.
//! - A claim that finds a due delivery of a FIFO endpoint that is not its head (a scheduled
//!   message that came due, a resent, recovered or replayed one, one due when the endpoint
//!   was switched to FIFO) parks it and promotes, and takes the head it may have promoted in
//!   the same claim. So a scheduled message joins the line when it comes due, and a resent
//!   one takes its place by id.
//!
//! A head that no longer exists or has finished counts as no head ([`PROMOTE`]'s condition),
//! so a line whose head went away by any other path (its message deleted, say) moves on at
//! the next promotion; the dispatcher also promotes every FIFO line now and then
//! ([`LINES_WITHOUT_HEAD`]), so none waits for an event that will not come.
//!
//! On PostgreSQL, every promotion runs with the endpoint's row locked (`FOR NO KEY UPDATE`,
//! taken first and in id order where there are several, as the attempt records do), then
//! reads the parked deliveries in a statement of its own: it sees every delivery a
//! transaction it waited for parked, so no delivery is left parked behind a line with no
//! head, and two nodes never make two heads.

use std::collections::HashMap;

use crate::domain::Timestamp;
use crate::domain::time::to_micros;
use crate::store::Result;
use crate::store::rows::StoredRow;
use crate::store::sql::{Conn, Sql};
use crate::store::throttle::Candidate;

/// A line's new head and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub id: i64,
    pub due: i64,
}

/// Makes the first parked delivery of endpoint `$1` its head, if it has none (or its head
/// has finished or gone) and is enabled and FIFO; returns the new head. The caller then
/// makes it due ([`MAKE_DUE`]).
pub(crate) const PROMOTE: &str = "UPDATE endpoint SET fifo_head =
       (SELECT d.id FROM delivery d
        WHERE d.endpoint_id = $1 AND d.status = 1 AND d.next_attempt_at IS NULL
        ORDER BY d.id LIMIT 1)
     WHERE id = $1 AND ordering = 1 AND NOT disabled
       AND (fifo_head IS NULL OR NOT EXISTS (SELECT 1 FROM delivery h
            WHERE h.id = endpoint.fifo_head AND h.status IN (1, 3)))
     RETURNING fifo_head";

/// Makes the new head `$1` due at `$2`, or at its message's `deliverAt` if that is later (a
/// scheduled delivery parked with its disabled endpoint keeps its time); returns when.
pub(crate) const MAKE_DUE: &str = "UPDATE delivery SET next_attempt_at = COALESCE(
       (SELECT m.deliver_at FROM message m WHERE m.id = delivery.msg_id AND m.deliver_at > $2),
       $2)
     WHERE id = $1 AND status = 1 AND next_attempt_at IS NULL
     RETURNING next_attempt_at";

/// Parks a due delivery `$1` behind its line's head (a claim found it); a delivery left
/// `sending` by a claim whose lease ran out is pending again.
pub(crate) const PARK: &str = "UPDATE delivery SET status = 1, lease_until = NULL,
     next_attempt_at = NULL, updated_at = $2 WHERE id = $1 AND status IN (1, 3)";

/// FIFO endpoints whose line may need a head: none, or one that has finished or gone. Few
/// rows (FIFO endpoints are few, and most have a live head).
pub(crate) const LINES_WITHOUT_HEAD: &str = "SELECT e.id FROM endpoint e
     WHERE e.ordering = 1 AND NOT e.disabled
       AND NOT EXISTS (SELECT 1 FROM delivery h WHERE h.id = e.fifo_head AND h.status IN (1, 3))
       AND EXISTS (SELECT 1 FROM delivery d
            WHERE d.endpoint_id = e.id AND d.status = 1 AND d.next_attempt_at IS NULL)";

/// [`PROMOTE`] then [`MAKE_DUE`] on a sqlx connection (the endpoint's row locked first on
/// PostgreSQL, see the module docs). Returns the new head.
pub(crate) async fn promote<C: Conn + ?Sized>(
    conn: &mut C,
    endpoint: &str,
    now: Timestamp,
) -> Result<Option<Head>> {
    let promote = Sql::new(PROMOTE).bind(endpoint);
    let head = match conn.row(&promote).await? {
        Some(row) => row.opt_int("fifo_head")?,
        None => None,
    };
    let Some(id) = head else {
        return Ok(None);
    };
    let due = Sql::new(MAKE_DUE).bind(id).bind(to_micros(now));
    let due = match conn.row(&due).await? {
        Some(row) => row.opt_int("next_attempt_at")?,
        None => None,
    };
    Ok(due.map(|due| Head { id, due }))
}

/// Splits a claim's candidates: those it may take, and those behind their FIFO line's head,
/// to be parked.
pub(crate) fn split(candidates: Vec<Candidate>) -> (Vec<Candidate>, Vec<Candidate>) {
    // The common claim has no FIFO delivery behind its head: no second list to make.
    if !candidates.iter().any(|c| c.behind) {
        return (candidates, Vec::new());
    }
    candidates.into_iter().partition(|c| !c.behind)
}

/// For each endpoint of `parked`, the head its promotion made, if due by `now`: a
/// candidate of the same claim.
pub(crate) fn heads_due(
    parked: &[Candidate],
    heads: &HashMap<String, Option<Head>>,
    now: Timestamp,
) -> Vec<Candidate> {
    let now = to_micros(now);
    let mut due = Vec::new();
    for c in parked {
        if let Some(Some(head)) = heads.get(c.endpoint.as_str())
            && head.due <= now
            && !due.iter().any(|d: &Candidate| d.id == head.id)
        {
            due.push(Candidate {
                id: head.id,
                behind: false,
                ..c.clone()
            });
        }
    }
    due
}

/// [`PROMOTE`] then [`MAKE_DUE`] inside SQLite's batch writer (the shared statements'
/// `$n` parameters bound by name: SQLite numbers named parameters in order of appearance).
pub(crate) fn promote_sqlite(
    conn: &rusqlite::Connection,
    endpoint: &str,
    now: Timestamp,
) -> Result<Option<Head>> {
    use rusqlite::{OptionalExtension, named_params};
    let head: Option<Option<i64>> = conn
        .prepare_cached(PROMOTE)?
        .query_row(named_params! {"$1": endpoint}, |row| row.get(0))
        .optional()?;
    let Some(id) = head.flatten() else {
        return Ok(None);
    };
    let due: Option<i64> = conn
        .prepare_cached(MAKE_DUE)?
        .query_row(named_params! {"$1": id, "$2": to_micros(now)}, |row| {
            row.get(0)
        })
        .optional()?;
    Ok(due.map(|due| Head { id, due }))
}

/// Parks the candidates behind their lines' heads and promotes each of their endpoints,
/// inside SQLite's batch writer; returns the new heads due by `now`, to be claimed with the
/// rest.
pub(crate) fn park_behind_sqlite(
    conn: &rusqlite::Connection,
    behind: &[Candidate],
    now: Timestamp,
) -> Result<Vec<Candidate>> {
    if behind.is_empty() {
        return Ok(Vec::new());
    }
    let mut park = conn.prepare_cached(PARK)?;
    let mut heads = HashMap::new();
    for c in behind {
        park.execute(rusqlite::named_params! {"$1": c.id, "$2": to_micros(now)})?;
    }
    for c in behind {
        if !heads.contains_key(c.endpoint.as_str()) {
            let head = promote_sqlite(conn, c.endpoint.as_str(), now)?;
            heads.insert(c.endpoint.as_str().to_owned(), head);
        }
    }
    Ok(heads_due(behind, &heads, now))
}
