//! What the store tells an operator about itself: the delivery queue's shape, endpoints by
//! state, the connection pools, and (measured as they happen) its write batches.
//!
//! The counts are read when asked (a Prometheus scrape, a readiness check) rather than kept
//! up to date on every write, so the hot path pays nothing for them. Each reads an index:
//! the queue's through `delivery_due`, a partial index holding only unfinished deliveries,
//! so its cost follows the backlog, never the history of finished deliveries.

use std::time::Instant;

use metrics::Histogram;

use crate::domain::{AppId, EndpointId, Timestamp};

/// Unfinished deliveries, by where they stand at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Waiting for an attempt and due now: pending and due, or claimed by a node whose lease
    /// ran out (it will be claimed again).
    pub due: u64,
    /// Waiting for a retry that is not due yet.
    pub scheduled: u64,
    /// Parked: their endpoint is disabled.
    pub parked: u64,
    /// Claimed under a lease that still runs: an attempt is in flight or about to start.
    pub in_flight: u64,
    /// When the longest-waiting due delivery came due.
    pub oldest_due: Option<Timestamp>,
}

impl QueueStats {
    /// Deliveries waiting for an attempt: due, scheduled or parked.
    pub fn pending(&self) -> u64 {
        self.due + self.scheduled + self.parked
    }
}

/// Endpoints enabled and disabled (by the API, or by hookd: 410 Gone, auto-disable). Their
/// health states are kept in `endpoint_health` and shown by the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointCounts {
    pub enabled: u64,
    pub disabled: u64,
}

/// What happened in one minute (UTC), for the UI's overview.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteActivity {
    /// Unix time of the minute's start, in minutes.
    pub minute: i64,
    /// Messages accepted (created) in it.
    pub accepted: u64,
    /// Attempts recorded in it that succeeded, and that failed.
    pub succeeded: u64,
    pub failed: u64,
}

/// An enabled endpoint whose health is `failing` or `degraded`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TroubledEndpoint {
    pub app_id: AppId,
    pub app_name: String,
    pub endpoint_id: EndpointId,
    pub url: String,
    /// `failing` or `degraded`.
    pub state: String,
    pub consecutive_failures: u64,
    pub failing_since: Option<Timestamp>,
    pub last_failure_at: Option<Timestamp>,
}

/// Database connections of this node, over its pools (SQLite: the read pool and the
/// management write connection; PostgreSQL: the one pool).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    pub in_use: u64,
    pub idle: u64,
    pub max: u64,
}

/// Measures the group commits of the hot path: jobs per batch and how long writing and
/// committing a batch took. Handles are registered once, so each batch costs two atomic
/// updates; [`BatchMetrics::noop`] measures nothing.
#[derive(Debug, Clone)]
pub struct BatchMetrics {
    pub jobs: Histogram,
    pub commit_seconds: Histogram,
}

impl BatchMetrics {
    pub fn noop() -> Self {
        Self {
            jobs: Histogram::noop(),
            commit_seconds: Histogram::noop(),
        }
    }

    /// Records a batch of `jobs` whose write started at `started`.
    pub fn batch(&self, jobs: usize, started: Instant) {
        self.jobs.record(jobs as f64);
        self.commit_seconds.record(started.elapsed().as_secs_f64());
    }
}

/// The [`BatchMetrics`] of each writer a store runs.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// SQLite's one batching writer (messages, attempt records and claims together).
    pub sqlite_writer: BatchMetrics,
    /// PostgreSQL's message writer.
    pub pg_ingest: BatchMetrics,
    /// PostgreSQL's attempt-record writer.
    pub pg_records: BatchMetrics,
}

impl StoreMetrics {
    pub fn noop() -> Self {
        Self {
            sqlite_writer: BatchMetrics::noop(),
            pg_ingest: BatchMetrics::noop(),
            pg_records: BatchMetrics::noop(),
        }
    }
}
