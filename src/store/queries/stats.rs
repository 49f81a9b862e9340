//! The queue's shape, endpoints by state and the pools' use, read at scrape time (see
//! `store::stats`).

use async_trait::async_trait;
use sqlx::Pool;

use crate::domain::Timestamp;
use crate::domain::time::from_micros;
use crate::store::engine::Engine;
use crate::store::rows::StoredRow;
use crate::store::sql::{Conn, Sql};
use crate::store::{EndpointCounts, PoolUsage, QueueStats, Result, StatsStore};

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
