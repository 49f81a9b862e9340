//! The dispatcher: claims due deliveries, sends them concurrently, records the outcomes.
//!
//! One loop per node claims batches of due deliveries under a lease (committed before any
//! request goes out), hands each to its own task, and sleeps until woken: by a new message
//! (`wake`), by a task finishing, by the next retry coming due, or by a paused endpoint
//! resuming. Concurrency is bounded globally (a semaphore whose permits move into the
//! tasks) and per endpoint: an endpoint at its limit, or paused after a 429/502/503/504, is
//! left out of claims, so a slow or failing endpoint never takes the slots of healthy ones.
//!
//! On shutdown the loop stops claiming, lets running attempts finish within the grace
//! period, then stops the rest and gives their claims back to the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::clock::Clock;
use super::policy::{RetryPolicy, bounded_retry_after};
use super::sender::{Response, SendResult, Sender};
use crate::domain::{
    Attempt, AttemptError, AttemptId, DeliveryStatus, EndpointId, ErrorClass, Timestamp,
};
use crate::store::{AttemptRecord, ClaimLimits, ClaimedDelivery, NextStep, Store};

#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Attempts in flight at once on this node.
    pub max_in_flight: usize,
    /// Attempts in flight at once to one endpoint.
    pub per_endpoint: usize,
    /// Deliveries claimed per store round trip.
    pub claim_batch: usize,
    /// How long a claim is held; must exceed the request timeout.
    pub lease: Duration,
    /// At shutdown, how long running attempts may take to finish.
    pub shutdown_grace: Duration,
}

/// After a store error, how long the loop waits before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// Longest sleep with nothing scheduled: a safety net, since every write that makes work
/// on this node also wakes the loop.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// Bounds of the pause after an endpoint signals overload.
const MIN_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);

pub struct Dispatcher {
    store: Arc<dyn Store>,
    sender: Sender,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    settings: DispatchSettings,
    permits: Arc<Semaphore>,
    loads: Mutex<EndpointLoads>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        sender: Sender,
        retry: RetryPolicy,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
        settings: DispatchSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            sender,
            retry,
            clock,
            wake,
            permits: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            loads: Mutex::new(EndpointLoads::new(settings.per_endpoint.max(1))),
            settings,
        })
    }

    /// Runs until `shutdown` is cancelled, then drains as described in the module docs.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        while !shutdown.is_cancelled() {
            if self.permits.available_permits() == 0 {
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
            let claimed_at = match self.claim_and_spawn(&tasks, &hard_stop).await {
                Ok((true, _)) => continue,
                Ok((false, at)) => at,
                Err(()) => {
                    tokio::select! {
                        _ = tokio::time::sleep(STORE_RETRY) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            };
            // From the claim's own `now`: whatever came due since then wakes the loop at once.
            let wake_at = self.next_wake(claimed_at).await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.clock.sleep_until(wake_at) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        tasks.close();
        if tokio::time::timeout(self.settings.shutdown_grace, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "attempts still running after the shutdown grace period; releasing them"
            );
            hard_stop.cancel();
            tasks.wait().await;
        }
    }

    /// Claims what is due and starts it. `Ok(true)`: something was claimed; there may be
    /// more, so claim again at once.
    async fn claim_and_spawn(
        self: &Arc<Self>,
        tasks: &TaskTracker,
        hard_stop: &CancellationToken,
    ) -> Result<(bool, Timestamp), ()> {
        let limit = self
            .permits
            .available_permits()
            .min(self.settings.claim_batch.max(1));
        let now = self.clock.now();
        let room = self.lock_loads().room(now);
        let limits = ClaimLimits {
            total: limit,
            per_endpoint: self.settings.per_endpoint.max(1),
            room,
        };
        let lease = now + delta(self.settings.lease);
        let claimed = match self.store.claim_due(now, lease, &limits).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "claiming deliveries failed");
                return Err(());
            }
        };
        let claimed_any = !claimed.is_empty();
        for delivery in claimed {
            // Only this loop takes permits, and it asked for no more than are available.
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.release(&[(delivery.id, delivery.lease)]).await;
                continue;
            };
            self.lock_loads().start(&delivery.endpoint.id);
            tasks.spawn(self.clone().deliver(delivery, permit, hard_stop.clone()));
        }
        Ok((claimed_any, now))
    }

    /// When the loop must look again without being woken: the next retry coming due or the
    /// next paused endpoint resuming, whichever is first, counted from `now`, the time of the
    /// claim that found nothing more.
    async fn next_wake(&self, now: Timestamp) -> Timestamp {
        let due = match self.store.next_due(now).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "reading the next due delivery failed");
                Some(now + delta(STORE_RETRY))
            }
        };
        let resume = self.lock_loads().next_resume(now);
        [due, resume]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + delta(IDLE_CHECK))
    }

    async fn deliver(
        self: Arc<Self>,
        delivery: ClaimedDelivery,
        permit: OwnedSemaphorePermit,
        hard_stop: CancellationToken,
    ) {
        let started = self.clock.now();
        let result = tokio::select! {
            result = self.sender.send(&delivery, started) => result,
            _ = hard_stop.cancelled() => {
                self.release(&[(delivery.id, delivery.lease)]).await;
                self.finish(&delivery, None, permit);
                return;
            }
        };
        let finished = self.clock.now();
        // The endpoint's slot and the global permit are free once the exchange is over; the
        // delivery stays leased until its record is written, so nothing can claim it twice.
        self.finish(&delivery, Some(&result), permit);
        let next = next_step(
            &result,
            delivery.attempts,
            &self.retry,
            rand::random::<f64>(),
            finished,
        );
        tracing::debug!(
            msg_id = %delivery.message.id,
            endpoint_id = %delivery.endpoint.id,
            status = result.outcome.as_ref().map_or(0, |r| r.status),
            next = ?next,
            "attempt made"
        );
        let record = AttemptRecord {
            delivery_id: delivery.id,
            lease: delivery.lease,
            attempt: attempt(&delivery, &result, started),
            next,
        };
        if let Err(e) = self.store.record_attempt(record).await {
            // The claim's lease will expire and the delivery will be attempted again.
            tracing::error!(error = %e, msg_id = %delivery.message.id, "recording an attempt failed");
        }
        // A retry may now be due sooner than what the loop is sleeping for.
        self.wake.notify_one();
    }

    fn finish(
        &self,
        delivery: &ClaimedDelivery,
        result: Option<&SendResult>,
        permit: OwnedSemaphorePermit,
    ) {
        let now = self.clock.now();
        self.lock_loads().finish(&delivery.endpoint.id, result, now);
        drop(permit);
        self.wake.notify_one();
    }

    async fn release(&self, claims: &[(i64, Timestamp)]) {
        if let Err(e) = self.store.release_claims(claims, self.clock.now()).await {
            tracing::warn!(error = %e, "releasing claims failed; they are retried when their lease expires");
        }
    }

    fn lock_loads(&self) -> std::sync::MutexGuard<'_, EndpointLoads> {
        // The map is updated in small critical sections that cannot panic half-way.
        self.loads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// What becomes of a delivery after an attempt (see the README's delivery semantics).
pub fn next_step(
    result: &SendResult,
    attempts_before: u32,
    retry: &RetryPolicy,
    unit: f64,
    now: Timestamp,
) -> NextStep {
    match &result.outcome {
        Ok(r) if (200..300).contains(&r.status) => NextStep::Delivered,
        Ok(r) if r.status == 410 => NextStep::DisableEndpoint,
        outcome => {
            let retry_number = usize::try_from(attempts_before)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let Some(scheduled) = retry.delay_before_retry(retry_number, unit) else {
                return NextStep::Failed;
            };
            let retry_after = match outcome {
                Ok(r) if matches!(r.status, 429 | 503) => r.retry_after,
                _ => None,
            };
            let wait = bounded_retry_after(scheduled, retry_after, retry.max_delay());
            NextStep::RetryAt(now + delta(wait))
        }
    }
}

fn attempt(delivery: &ClaimedDelivery, result: &SendResult, started: Timestamp) -> Attempt {
    let (status, code, body, headers, error) = match &result.outcome {
        Ok(Response {
            status,
            headers,
            body,
            ..
        }) => {
            let ok = (200..300).contains(status);
            let error = (!ok).then(|| AttemptError {
                class: ErrorClass::HttpStatus,
                message: format!("the endpoint answered {status}"),
            });
            let state = if ok {
                DeliveryStatus::Success
            } else {
                DeliveryStatus::Fail
            };
            (state, *status, body.clone(), headers.clone(), error)
        }
        Err(e) => (
            DeliveryStatus::Fail,
            0,
            String::new(),
            Default::default(),
            Some(e.clone()),
        ),
    };
    Attempt {
        id: AttemptId::generate(),
        msg_id: delivery.message.id.clone(),
        endpoint_id: delivery.endpoint.id.clone(),
        app_id: delivery.endpoint.app_id.clone(),
        url: delivery.endpoint.url.as_str().to_owned(),
        status,
        response_status_code: code,
        response_body: body,
        response_headers: headers,
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
        trigger: delivery.trigger,
        error,
        created_at: started,
    }
}

/// In-flight attempts per endpoint, with an adaptive limit: halved (and the endpoint paused)
/// when it signals overload, raised by one per success back up to the configured maximum.
struct EndpointLoads {
    max: usize,
    loads: HashMap<EndpointId, Load>,
}

struct Load {
    in_flight: usize,
    limit: usize,
    paused_until: Option<Timestamp>,
}

impl EndpointLoads {
    fn new(max: usize) -> Self {
        Self {
            max,
            loads: HashMap::new(),
        }
    }

    fn start(&mut self, endpoint: &EndpointId) {
        let max = self.max;
        self.loads
            .entry(endpoint.clone())
            .or_insert(Load {
                in_flight: 0,
                limit: max,
                paused_until: None,
            })
            .in_flight += 1;
    }

    fn finish(&mut self, endpoint: &EndpointId, result: Option<&SendResult>, now: Timestamp) {
        let Some(load) = self.loads.get_mut(endpoint) else {
            return;
        };
        load.in_flight = load.in_flight.saturating_sub(1);
        match result.map(|r| &r.outcome) {
            Some(Ok(r)) if matches!(r.status, 429 | 502 | 503 | 504) => {
                load.limit = (load.limit / 2).max(1);
                let pause = r
                    .retry_after
                    .unwrap_or(MIN_PAUSE)
                    .clamp(MIN_PAUSE, MAX_PAUSE);
                load.paused_until = Some(now + delta(pause));
            }
            Some(Ok(r)) if (200..300).contains(&r.status) => {
                load.limit = (load.limit + 1).min(self.max);
            }
            _ => {}
        }
        let resting = load.in_flight == 0
            && load.limit == self.max
            && load.paused_until.is_none_or(|p| p <= now);
        if resting {
            self.loads.remove(endpoint);
        }
    }

    /// How many more attempts each busy endpoint may take now (0 while paused).
    fn room(&self, now: Timestamp) -> HashMap<EndpointId, usize> {
        self.loads
            .iter()
            .map(|(id, l)| {
                let paused = l.paused_until.is_some_and(|p| p > now);
                let room = if paused {
                    0
                } else {
                    l.limit.saturating_sub(l.in_flight)
                };
                (id.clone(), room)
            })
            .collect()
    }

    fn next_resume(&self, now: Timestamp) -> Option<Timestamp> {
        self.loads
            .values()
            .filter_map(|l| l.paused_until)
            .filter(|p| *p > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::now;

    fn answered(status: u16, retry_after: Option<u64>) -> SendResult {
        SendResult {
            duration: Duration::from_millis(3),
            outcome: Ok(Response {
                status,
                headers: Default::default(),
                body: String::new(),
                retry_after: retry_after.map(Duration::from_secs),
            }),
        }
    }

    fn failed(class: ErrorClass) -> SendResult {
        SendResult {
            duration: Duration::from_millis(3),
            outcome: Err(AttemptError {
                class,
                message: "x".into(),
            }),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(vec![Duration::from_secs(5), Duration::from_secs(300)], 0.0)
    }

    #[test]
    fn success_delivers_and_gone_disables() {
        let t = now();
        assert_eq!(
            next_step(&answered(204, None), 0, &policy(), 0.5, t),
            NextStep::Delivered
        );
        assert_eq!(
            next_step(&answered(410, None), 0, &policy(), 0.5, t),
            NextStep::DisableEndpoint
        );
    }

    #[test]
    fn everything_else_follows_the_schedule_then_fails() {
        let t = now();
        for result in [
            answered(500, None),
            answered(302, None),
            answered(404, None),
            failed(ErrorClass::Timeout),
            failed(ErrorClass::SsrfRefused),
        ] {
            assert_eq!(
                next_step(&result, 0, &policy(), 0.5, t),
                NextStep::RetryAt(t + TimeDelta::seconds(5))
            );
            assert_eq!(
                next_step(&result, 1, &policy(), 0.5, t),
                NextStep::RetryAt(t + TimeDelta::seconds(300))
            );
            assert_eq!(next_step(&result, 2, &policy(), 0.5, t), NextStep::Failed);
        }
    }

    #[test]
    fn retry_after_is_honoured_for_429_and_503_within_bounds() {
        let t = now();
        let step = |status, after| next_step(&answered(status, Some(after)), 0, &policy(), 0.5, t);
        assert_eq!(step(429, 60), NextStep::RetryAt(t + TimeDelta::seconds(60)));
        assert_eq!(step(503, 1), NextStep::RetryAt(t + TimeDelta::seconds(5)));
        assert_eq!(
            step(429, 99_999),
            NextStep::RetryAt(t + TimeDelta::seconds(300))
        );
        assert_eq!(step(500, 60), NextStep::RetryAt(t + TimeDelta::seconds(5)));
    }

    #[test]
    fn overload_halves_the_limit_and_pauses_the_endpoint() {
        let t = now();
        let ep = EndpointId::generate();
        let mut loads = EndpointLoads::new(8);
        for _ in 0..8 {
            loads.start(&ep);
        }
        assert_eq!(loads.room(t)[&ep], 0);
        loads.finish(&ep, Some(&answered(429, Some(10))), t);
        assert_eq!(loads.loads[&ep].limit, 4);
        assert_eq!(loads.next_resume(t), Some(t + TimeDelta::seconds(10)));
        let later = t + TimeDelta::seconds(11);
        assert_eq!(loads.room(t)[&ep], 0, "paused");
        assert_eq!(loads.room(later)[&ep], 0, "7 in flight, limit 4");
        for _ in 0..3 {
            loads.finish(&ep, Some(&answered(200, None)), later);
        }
        assert_eq!(loads.room(later)[&ep], 3, "4 in flight, limit 7");
        for _ in 0..4 {
            loads.finish(&ep, Some(&answered(200, None)), t + TimeDelta::seconds(11));
        }
        assert!(loads.loads.is_empty(), "back to rest after successes");
    }
}
