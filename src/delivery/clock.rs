//! The dispatcher's view of time, injectable so tests can move it by hand.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::domain::Timestamp;
use crate::domain::time;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    /// Completes once `now()` has reached `deadline`.
    fn sleep_until(&self, deadline: Timestamp) -> BoxFuture<'static, ()>;
}

/// Wall-clock time, sleeping with tokio timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        time::now()
    }

    fn sleep_until(&self, deadline: Timestamp) -> BoxFuture<'static, ()> {
        let wait = (deadline - time::now()).to_std().unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// Time that moves only when told to ([`ManualClock::advance`]); sleepers wake when it
/// passes their deadline. For deterministic tests of retry schedules.
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<Timestamp>>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let by = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        self.now.send_modify(|now| *now += by);
    }

    pub fn set(&self, to: Timestamp) {
        self.now.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: Timestamp) -> BoxFuture<'static, ()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // `wait_for` fails only if the clock is dropped; then never wake.
            if rx.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleep_wakes_only_when_advanced_past_deadline() {
        let clock = ManualClock::new(time::now());
        let deadline = clock.now() + TimeDelta::seconds(10);
        let mut sleeper = tokio::spawn(clock.sleep_until(deadline));
        clock.advance(Duration::from_secs(5));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut sleeper)
                .await
                .is_err()
        );
        clock.advance(Duration::from_secs(5));
        sleeper.await.unwrap();
    }
}
