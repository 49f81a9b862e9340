//! Heartbeats: how the delivering nodes sharing a PostgreSQL database notice that one of
//! them died, in seconds rather than when its leases expire.
//!
//! Each delivering node writes its row of the `node` table every `node_heartbeat_secs`
//! (the database's clock); in the same round it looks for nodes whose heartbeat is older
//! than `node_dead_after_secs`, and gives back their claims, due at once, so that they are
//! attempted again (see [`NodeStore`] for how one node, not several, does it). From a
//! SIGKILL to the other nodes' next attempt takes at most `node_dead_after_secs` plus one
//! heartbeat interval (12 s with the defaults), instead of the lease (the request timeout
//! plus 30 s).
//!
//! A node looks for dead ones only once its own heartbeats have gone through without a gap
//! for `node_dead_after_secs`: one that was itself cut off (the database restarting, the
//! process paused) first gives the others the time to beat again.
//!
//! At a clean stop, once the dispatcher has finished (it gives back its claims as it
//! stops), the node gives back whatever it still holds and removes its row.
//!
//! A node that was only slow (its heartbeat late by more than `node_dead_after_secs`, its
//! process paused, its network cut) finds its claims given back: attempts it still makes are
//! logged, but their records move nothing, since the deliveries no longer carry the leases
//! they were made under, so another node's newer attempt is never undone. The cost is that
//! the endpoint may receive the message twice (at least once delivery; receivers
//! de-duplicate on `webhook-id`).
//!
//! SQLite is one process: there is no one else to notice, and this does nothing there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::delivery::clock::Clock;
use crate::domain::Timestamp;
use crate::store::{NodeBeat, NodeReport, Store};

#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// How often this node writes its heartbeat (`node_heartbeat_secs`).
    pub heartbeat: Duration,
    /// A node whose heartbeat is older is dead (`node_dead_after_secs`).
    pub dead_after: Duration,
    /// Where this node serves its API, written in its row for people.
    pub address: String,
}

#[derive(Clone)]
pub struct NodeMetrics {
    /// Nodes with a fresh heartbeat, as this node's last heartbeat counted them.
    pub live: metrics::Gauge,
    /// Claims of dead nodes this node gave back.
    pub claims_taken_over: metrics::Counter,
}

/// What the readiness route shows of this node's place among the others.
#[derive(Debug)]
pub struct NodeStatus {
    pub id: String,
    live: AtomicU64,
}

impl NodeStatus {
    pub fn new(id: &str) -> Arc<Self> {
        Arc::new(Self {
            id: id.to_owned(),
            live: AtomicU64::new(0),
        })
    }

    /// Nodes with a fresh heartbeat at this node's last heartbeat (0 before the first).
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
}

/// Beats every `settings.heartbeat` until `stop`, then leaves. `stop` must be cancelled only
/// once the dispatcher has finished, so that the heartbeat goes on while running attempts
/// finish within the shutdown grace period.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: NodeSettings,
    metrics: NodeMetrics,
    status: Arc<NodeStatus>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let started = clock.now();
    let mut beats = Beats::new(&settings);
    let mut every = tokio::time::interval(settings.heartbeat);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.cancelled() => break,
        }
        let at = Instant::now();
        let beat = NodeBeat {
            address: settings.address.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started,
            now: clock.now(),
            dead_after: settings.dead_after,
            sweep: beats.may_sweep(at),
        };
        match store.node_heartbeat(&beat).await {
            Ok(report) => {
                beats.succeeded(at);
                status.live.store(report.live, Ordering::Relaxed);
                metrics.live.set(report.live as f64);
                note(&report, &metrics, &wake, &settings);
            }
            Err(e) => tracing::warn!(error = %e, "writing this node's heartbeat failed"),
        }
    }
    leave(store.as_ref(), clock.now()).await;
}

async fn leave(store: &dyn Store, now: Timestamp) {
    match store.node_leave(now).await {
        Ok(0) => {}
        Ok(released) => {
            tracing::info!(claims = released, "gave back this node's remaining claims")
        }
        Err(e) => tracing::warn!(
            error = %e,
            "leaving the node table failed; the other nodes will take this node for dead"
        ),
    }
}

fn note(report: &NodeReport, metrics: &NodeMetrics, wake: &Notify, settings: &NodeSettings) {
    if report.rejoined {
        tracing::warn!(
            dead_after = ?settings.dead_after,
            "this node's heartbeat was late and another node took it for dead: its claims \
             were given back; attempts it still makes are logged without moving their deliveries"
        );
    }
    if !report.dead.is_empty() {
        tracing::warn!(
            nodes = ?report.dead,
            claims = report.released,
            "nodes stopped beating; gave back their claims"
        );
    }
    if report.released > 0 {
        metrics.claims_taken_over.increment(report.released);
        // The other nodes hear of them by NOTIFY; this one wakes its own dispatcher.
        wake.notify_one();
    }
}

/// Whether this node's own heartbeats have gone through without a gap for long enough that
/// it may judge the others.
struct Beats {
    /// A gap between two heartbeats longer than this is a missed beat.
    longest_gap: Duration,
    dead_after: Duration,
    last_ok: Option<Instant>,
    steady_since: Option<Instant>,
}

impl Beats {
    fn new(settings: &NodeSettings) -> Self {
        Self {
            longest_gap: settings.heartbeat * 2 + Duration::from_millis(500),
            dead_after: settings.dead_after,
            last_ok: None,
            steady_since: None,
        }
    }

    /// Since when the beats have been steady, counting a beat at `at` that goes through.
    fn steady_from(&self, at: Instant) -> Instant {
        match (self.last_ok, self.steady_since) {
            (Some(ok), Some(since)) if at.saturating_duration_since(ok) <= self.longest_gap => {
                since
            }
            _ => at,
        }
    }

    fn may_sweep(&self, at: Instant) -> bool {
        at.saturating_duration_since(self.steady_from(at)) >= self.dead_after
    }

    fn succeeded(&mut self, at: Instant) {
        self.steady_since = Some(self.steady_from(at));
        self.last_ok = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> NodeSettings {
        NodeSettings {
            heartbeat: Duration::from_secs(2),
            dead_after: Duration::from_secs(10),
            address: String::new(),
        }
    }

    #[test]
    fn judges_others_only_after_steady_beats_for_dead_after() {
        let mut beats = Beats::new(&settings());
        let start = Instant::now();
        let secs = |s: u64| start + Duration::from_secs(s);
        for s in (0..10).step_by(2) {
            assert!(!beats.may_sweep(secs(s)), "at {s} s");
            beats.succeeded(secs(s));
        }
        assert!(beats.may_sweep(secs(10)));
        beats.succeeded(secs(10));
        // Cut off from 12 s to 20 s (failed beats are not counted): steady again from 20 s.
        assert!(!beats.may_sweep(secs(20)));
        beats.succeeded(secs(20));
        assert!(!beats.may_sweep(secs(28)));
        for s in (22..30).step_by(2) {
            beats.succeeded(secs(s));
        }
        assert!(beats.may_sweep(secs(30)));
    }
}
