//! The node table on PostgreSQL: heartbeats, and giving back the claims of nodes that
//! stopped beating (see [`NodeStore`]).
//!
//! Heartbeats are written and judged by the database's clock (`clock_timestamp()`), so the
//! nodes' own clocks may disagree by any amount without one taking another for dead.
//! Finding dead nodes is one transaction: it deletes the stale rows, locking them with
//! `FOR UPDATE SKIP LOCKED` (a node sweeping at the same moment passes them over, so one
//! node's claims are given back by one node), then gives back the deliveries they still
//! hold (`status = 3` and `claimed_by` one of them, through `delivery_claimed_by`) and
//! notifies the worker nodes, all committed together. A delivery whose attempt was recorded
//! meanwhile is no longer `status = 3` and is left alone; one given back can no longer be
//! moved on by the dead node's record, since its lease is gone (`records`).

use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::{PgStore, micros, notify_due};
use crate::domain::Timestamp;
use crate::store::{NodeBeat, NodeReport, NodeStore, Result};

/// The database's time in microseconds, as `last_heartbeat` holds it.
const DB_NOW: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

#[async_trait]
impl NodeStore for PgStore {
    fn node_id(&self) -> Option<&str> {
        Some(&self.node)
    }

    async fn node_heartbeat(&self, beat: &NodeBeat) -> Result<NodeReport> {
        let dead_after = i64::try_from(beat.dead_after.as_micros()).unwrap_or(i64::MAX);
        // `xmax = 0`: the row was inserted, not updated.
        let inserted: bool = sqlx::query_scalar(&format!(
            "INSERT INTO node (id, address, version, started_at, last_heartbeat)
             VALUES ($1, $2, $3, $4, {DB_NOW})
             ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat,
               address = excluded.address, version = excluded.version
             RETURNING xmax = 0"
        ))
        .bind(&*self.node)
        .bind(&beat.address)
        .bind(&beat.version)
        .bind(micros(beat.started))
        .fetch_one(&self.pool)
        .await?;
        let joined_before = self.joined.swap(true, Ordering::Relaxed);
        let mut report = NodeReport {
            rejoined: inserted && joined_before,
            ..NodeReport::default()
        };
        let mut tx = self.pool.begin().await?;
        if beat.sweep {
            report.dead = sqlx::query_scalar(&format!(
                "DELETE FROM node WHERE id IN (
                   SELECT id FROM node WHERE id <> $1 AND last_heartbeat < {DB_NOW} - $2
                   FOR UPDATE SKIP LOCKED)
                 RETURNING id"
            ))
            .bind(&*self.node)
            .bind(dead_after)
            .fetch_all(&mut *tx)
            .await?;
        }
        if !report.dead.is_empty() {
            report.released = release_claims_of(&mut tx, &report.dead, beat.now).await?;
        }
        let live: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM node WHERE last_heartbeat >= {DB_NOW} - $1"
        ))
        .bind(dead_after)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        report.live = u64::try_from(live).unwrap_or(0);
        Ok(report)
    }

    async fn node_leave(&self, now: Timestamp) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM node WHERE id = $1")
            .bind(&*self.node)
            .execute(&mut *tx)
            .await?;
        let released = release_claims_of(&mut tx, &[self.node.to_string()], now).await?;
        tx.commit().await?;
        Ok(released)
    }
}

/// Gives back, due at `now`, the deliveries the nodes `nodes` hold claimed, and notifies the
/// worker nodes if there were any; returns how many.
async fn release_claims_of(
    conn: &mut sqlx::PgConnection,
    nodes: &[String],
    now: Timestamp,
) -> Result<u64> {
    let released = sqlx::query(
        "UPDATE delivery SET status = 1, next_attempt_at = $1, lease_until = NULL,
           updated_at = $1
         WHERE status = 3 AND claimed_by = ANY($2)",
    )
    .bind(micros(now))
    .bind(nodes)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if released > 0 {
        notify_due(conn).await?;
    }
    Ok(released)
}
