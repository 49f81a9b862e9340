//! The queue's shape, endpoints by state and the pools' use, read at scrape time (see
//! `store::stats`).

use async_trait::async_trait;
use sqlx::Pool;

use crate::domain::Timestamp;
use crate::domain::time::from_micros;
use crate::domain::time::to_micros;
use crate::domain::{AppId, EndpointId};
use crate::store::engine::Engine;
use crate::store::rows::StoredRow;
use crate::store::sql::{Conn, Sql};
use crate::store::{
    EndpointCounts, MinuteActivity, PoolUsage, QueueStats, Result, StatsStore, TroubledEndpoint,
};

/// Unfinished deliveries by state. `status IN (1, 3)` is `delivery_due`'s predicate, so both
/// engines walk that partial index (unfinished deliveries only) and never the finished ones.
/// State: 0 parked (no due time), 1 due, 2 in flight (lease running), 3 scheduled retry.
const QUEUE_STATS: &str = "SELECT CASE
        WHEN next_attempt_at IS NULL THEN 0
        WHEN next_attempt_at <= $1 THEN 1
        WHEN status = 3 THEN 2
        ELSE 3 END AS state,
     COUNT(*) AS n, MIN(next_attempt_at) AS oldest
     FROM delivery WHERE status IN (1, 3) GROUP BY 1";

const MINUTE_US: i64 = 60_000_000;

#[async_trait]
impl<E: Engine> StatsStore for E {
    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats> {
        let rows = self
            .reads()
            .acquire()
            .await?
            .rows(&Sql::new(QUEUE_STATS).bind(now))
            .await?;
        let mut stats = QueueStats::default();
        for row in rows {
            let n = u64::try_from(row.int("n")?).unwrap_or(0);
            match row.int("state")? {
                0 => stats.parked = n,
                1 => {
                    stats.due = n;
                    stats.oldest_due = row.opt_int("oldest")?.map(from_micros);
                }
                2 => stats.in_flight = n,
                _ => stats.scheduled = n,
            }
        }
        Ok(stats)
    }

    async fn oldest_due(&self, now: Timestamp) -> Result<Option<Timestamp>> {
        // The first entry of the `delivery_due` index: one index lookup.
        let oldest = Sql::new(
            "SELECT MIN(next_attempt_at) AS oldest FROM delivery
             WHERE status IN (1, 3) AND next_attempt_at <= $1",
        )
        .bind(now);
        let row = self.reads().acquire().await?.row(&oldest).await?;
        Ok(row
            .map(|r| r.opt_int("oldest"))
            .transpose()?
            .flatten()
            .map(from_micros))
    }

    async fn endpoint_counts(&self) -> Result<EndpointCounts> {
        let count = Sql::new(
            "SELECT COUNT(CASE WHEN disabled THEN 1 END) AS disabled, COUNT(*) AS total
             FROM endpoint",
        );
        let row = self.reads().acquire().await?.row(&count).await?;
        let (disabled, total) = match row {
            Some(row) => (row.int("disabled")?, row.int("total")?),
            None => (0, 0),
        };
        let disabled = u64::try_from(disabled).unwrap_or(0);
        Ok(EndpointCounts {
            enabled: u64::try_from(total).unwrap_or(0).saturating_sub(disabled),
            disabled,
        })
    }

    async fn activity(&self, since: Timestamp) -> Result<Vec<MinuteActivity>> {
        let since_us = to_micros(since).div_euclid(MINUTE_US) * MINUTE_US;
        // Attempt ids are prefixed ULIDs, which sort by the millisecond they were made in:
        // the smallest id of `since`'s minute bounds the primary key's range.
        let since_ms = u64::try_from(since_us / 1000).unwrap_or(0);
        let first_id = format!("atmpt_{}", ulid::Ulid::from_parts(since_ms, 0));
        let mut conn = self.reads().acquire().await?;
        let accepted = conn
            .rows(
                &Sql::new(format!(
                    "SELECT created_at / {MINUTE_US} AS minute, COUNT(*) AS n FROM message
                     WHERE created_at >= $1 GROUP BY 1"
                ))
                .bind(since_us),
            )
            .await?;
        let attempts = conn
            .rows(
                &Sql::new(format!(
                    "SELECT created_at / {MINUTE_US} AS minute, status, COUNT(*) AS n
                     FROM attempt WHERE id >= $1 AND created_at >= $2 GROUP BY 1, 2"
                ))
                .bind(first_id)
                .bind(since_us),
            )
            .await?;
        let mut minutes = std::collections::BTreeMap::<i64, MinuteActivity>::new();
        for row in accepted {
            let minute = row.int("minute")?;
            let entry = minutes.entry(minute).or_default();
            entry.accepted = u64::try_from(row.int("n")?).unwrap_or(0);
        }
        for row in attempts {
            let minute = row.int("minute")?;
            let n = u64::try_from(row.int("n")?).unwrap_or(0);
            let entry = minutes.entry(minute).or_default();
            // 0 is a success; anything else recorded is a failed attempt.
            if row.int("status")? == 0 {
                entry.succeeded += n;
            } else {
                entry.failed += n;
            }
        }
        Ok(minutes
            .into_iter()
            .map(|(minute, counts)| MinuteActivity { minute, ..counts })
            .collect())
    }

    async fn troubled_endpoints(&self, limit: usize) -> Result<Vec<TroubledEndpoint>> {
        let query = Sql::new(
            "SELECT e.app_id, a.name AS app_name, e.id, e.url, h.state,
                    h.consecutive_failures, h.failing_since, h.last_failure_at
             FROM endpoint_health h
             JOIN endpoint e ON e.id = h.endpoint_id
             JOIN application a ON a.id = e.app_id
             WHERE h.state IN ('failing', 'degraded') AND NOT e.disabled
             ORDER BY CASE h.state WHEN 'failing' THEN 0 ELSE 1 END,
                      h.consecutive_failures DESC, e.id
             LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = self.reads().acquire().await?.rows(&query).await?;
        rows.iter()
            .map(|row| {
                Ok(TroubledEndpoint {
                    app_id: AppId::from_stored(row.text("app_id")?),
                    app_name: row.text("app_name")?,
                    endpoint_id: EndpointId::from_stored(row.text("id")?),
                    url: row.text("url")?,
                    state: row.text("state")?,
                    consecutive_failures: u64::try_from(row.int("consecutive_failures")?)
                        .unwrap_or(0),
                    failing_since: row.opt_int("failing_since")?.map(from_micros),
                    last_failure_at: row.opt_int("last_failure_at")?.map(from_micros),
                })
            })
            .collect()
    }

    fn pool_usage(&self) -> PoolUsage {
        let mut usage = usage_of(self.reads());
        // PostgreSQL reads and writes share one pool: count it once.
        if !std::ptr::eq(self.reads(), self.writes()) {
            let writes = usage_of(self.writes());
            usage.in_use += writes.in_use;
            usage.idle += writes.idle;
            usage.max += writes.max;
        }
        usage
    }
}

fn usage_of<DB: sqlx::Database>(pool: &Pool<DB>) -> PoolUsage {
    let size = u64::from(pool.size());
    let idle = u64::try_from(pool.num_idle()).unwrap_or(u64::MAX).min(size);
    PoolUsage {
        in_use: size - idle,
        idle,
        max: u64::from(pool.options().get_max_connections()),
    }
}
