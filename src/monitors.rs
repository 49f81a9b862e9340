//! Freshness monitors: "the scraper posts `run.completed` at least once a day". A monitor
//! watches an application's messages (or those of one event type) and is `stale` once none
//! came for longer than its `maxSilence`, `ok` again when one comes; each change is reported
//! once as an operational event (`monitor.stale`, `monitor.recovered`), whatever the number
//! of nodes.
//!
//! Every node checks, once a second, the monitors that are due (nothing seen for
//! `maxSilence`) or stale (to see them recover); the others cost nothing. A check reads only
//! the messages the monitor has not looked at yet (see the store's `check_monitor`), and
//! ingest does not know monitors exist. So a state changes within about a second of its
//! cause, plus the time a node takes to look at the messages in between.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::MonitorState;
use crate::domain::time::now;
use crate::store::Store;

/// How often a node checks the monitors that are due or stale.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Monitors checked per round at most (the soonest due first).
const BATCH: usize = 200;

/// Checks monitors until `shutdown`; wakes `events_written` when a state changed, so the
/// operational event goes out at once.
pub async fn run(store: Arc<dyn Store>, events_written: Arc<Notify>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                if check_due(&*store).await > 0 {
                    events_written.notify_one();
                }
            }
        }
    }
}

/// One round: checks the monitors due or stale now; returns how many changed state.
pub async fn check_due(store: &dyn Store) -> usize {
    let at = now();
    let ids = match store.monitors_to_check(at, BATCH).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the monitors to check");
            return 0;
        }
    };
    let mut changed = 0;
    for id in ids {
        match store.check_monitor(&id, at).await {
            Ok(Some((m, true))) => {
                changed += 1;
                match m.state {
                    MonitorState::Stale => tracing::warn!(monitor = %m.id, name = %m.name,
                        last_seen_at = ?m.last_seen_at, "monitor is stale"),
                    MonitorState::Ok => tracing::info!(monitor = %m.id, name = %m.name,
                        "monitor recovered"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(monitor = %id, error = %e, "cannot check a monitor"),
        }
    }
    changed
}
