//! Endpoint health: the counters kept per endpoint as attempts are recorded, and the pure
//! rules that move them on.
//!
//! The store keeps one [`HealthCounters`] row per endpoint and, in the same write as a batch
//! of attempt records, hands this module the endpoint's counters and the batch's outcomes for
//! it ([`judge`]). What comes back is the new counters, whether hookd disables the endpoint,
//! and the operational events the batch causes. Nothing here reads the attempt log: the
//! window of the last `health_window` outcomes is kept as a short string of `1`s and `0`s.
//!
//! Rules, in the order they are applied to each outcome:
//! - a success ends the failing streak; if a `message.attempt.failing` was sent for that
//!   streak, it is followed by `message.attempt.recovered`;
//! - a failure extends the streak (starting it at that attempt's time); each of
//!   `failing_alert_at` it reaches is reported once per streak, by the attempt that reached it;
//! - a delivery that fails for good is reported as `message.attempt.exhausted`;
//! - an enabled endpoint is disabled by a 410 Gone, after `auto_disable_after_failures`
//!   consecutive failures, or once its streak began `auto_disable_after_secs` or more before
//!   the failed attempt (each 0 = off).
//!
//! The state is `failing` while the streak has reached the first alert threshold, else
//! `degraded` while the window's success rate is below `degraded_below`, else `healthy`; a
//! disabled endpoint shows `disabled` whatever its counters say. A batch that changes the
//! shown state reports it once (`endpoint.health.changed`, from the state before the batch
//! to the state after it).

use super::events::{DisableReason, HealthState};
use super::time::Timestamp;

/// The global health options; an endpoint may override the auto-disable ones.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    /// How many of the last attempts the success rate is taken over.
    pub window: usize,
    /// A success rate below this is `degraded`.
    pub degraded_below: f64,
    /// Streak lengths reported by `message.attempt.failing`, ascending; the first one makes
    /// the endpoint `failing`.
    pub failing_alert_at: Vec<u32>,
    pub auto_disable: AutoDisable,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            window: 100,
            degraded_below: 0.8,
            failing_alert_at: vec![3, 5, 10],
            auto_disable: AutoDisable {
                after_failures: 0,
                after_secs: 432_000,
            },
        }
    }
}

/// When hookd disables a failing endpoint by itself; 0 turns a rule off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutoDisable {
    /// Consecutive failed attempts.
    pub after_failures: u32,
    /// Seconds from the first failed attempt of the streak to a failed attempt.
    pub after_secs: u64,
}

impl AutoDisable {
    /// These rules with an endpoint's own values where it has them.
    pub fn overridden(self, after_failures: Option<u32>, after_secs: Option<u64>) -> Self {
        Self {
            after_failures: after_failures.unwrap_or(self.after_failures),
            after_secs: after_secs.unwrap_or(self.after_secs),
        }
    }
}

/// What hookd keeps about an endpoint's recent attempts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthCounters {
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// When the first attempt of the current failing streak was made.
    pub failing_since: Option<Timestamp>,
    /// The last attempts' outcomes, oldest first: `1` a success, `0` a failure.
    pub window: String,
    pub last_success_at: Option<Timestamp>,
    pub last_failure_at: Option<Timestamp>,
    /// The greatest of `failing_alert_at` reported for the current streak; 0: none yet.
    pub alerted: u32,
    /// The state the counters were in after the last batch (never `disabled`, which is the
    /// endpoint's own flag).
    pub state: HealthState,
}

impl HealthCounters {
    /// Attempts in the window.
    pub fn window_attempts(&self) -> u32 {
        u32::try_from(self.window.len()).unwrap_or(u32::MAX)
    }

    /// Successes over attempts in the window; `None` before any attempt.
    pub fn success_rate(&self) -> Option<f64> {
        let total = self.window.len();
        if total == 0 {
            return None;
        }
        let ok = self.window.bytes().filter(|b| *b == b'1').count();
        Some(ok as f64 / total as f64)
    }

    /// The state these counters are in under `settings` (never `disabled`).
    pub fn state_under(&self, settings: &HealthSettings) -> HealthState {
        let failing_at = settings.failing_alert_at.first().copied();
        if failing_at.is_some_and(|at| self.consecutive_failures >= at) {
            HealthState::Failing
        } else if self
            .success_rate()
            .is_some_and(|rate| rate < settings.degraded_below)
        {
            HealthState::Degraded
        } else {
            HealthState::Healthy
        }
    }

    /// The state an endpoint shows.
    pub fn shown(&self, disabled: bool) -> HealthState {
        if disabled {
            HealthState::Disabled
        } else {
            self.state
        }
    }

    fn push(&mut self, success: bool, window: usize) {
        self.window.push(if success { '1' } else { '0' });
        let excess = self.window.len().saturating_sub(window.max(1));
        if excess > 0 {
            self.window.drain(..excess);
        }
    }
}

/// One recorded attempt, as health sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub success: bool,
    /// When the attempt was made.
    pub at: Timestamp,
    /// The endpoint answered 410 Gone.
    pub gone: bool,
    /// The delivery failed for good with this attempt (its retries are used up).
    pub exhausted: bool,
}

/// What a batch causes; `attempt` is the outcome's index in the batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HealthEvent {
    /// `message.attempt.failing`: the streak reached one of `failing_alert_at`.
    Failing { attempt: usize },
    /// `message.attempt.exhausted`.
    Exhausted { attempt: usize },
    /// `message.attempt.recovered`: a success after a failing event for the streak.
    Recovered { attempt: usize },
    /// `endpoint.disabled`, by hookd.
    Disabled {
        attempt: usize,
        reason: DisableReason,
        fail_since: Option<Timestamp>,
    },
    /// `endpoint.health.changed`, from before the batch to after it.
    StateChanged {
        previous: HealthState,
        state: HealthState,
    },
}

/// The counters after a batch, and what follows from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub counters: HealthCounters,
    /// Why hookd disables the endpoint with this batch, if it does.
    pub disable: Option<DisableReason>,
    /// In the order they happened.
    pub events: Vec<HealthEvent>,
}

/// Moves an endpoint's counters on by a batch of its outcomes, in the order they were made.
/// `disabled`: the endpoint is disabled already (its attempts in flight are still counted,
/// but it is not disabled again). `auto`: the auto-disable rules with the endpoint's
/// overrides.
pub fn judge(
    mut counters: HealthCounters,
    disabled: bool,
    outcomes: &[Outcome],
    settings: &HealthSettings,
    auto: AutoDisable,
) -> Judgement {
    let previous = counters.shown(disabled);
    let mut disable = None;
    let mut events = Vec::new();
    for (attempt, outcome) in outcomes.iter().enumerate() {
        counters.push(outcome.success, settings.window);
        if outcome.success {
            counters.last_success_at = Some(outcome.at);
            if counters.alerted > 0 {
                events.push(HealthEvent::Recovered { attempt });
            }
            counters.consecutive_failures = 0;
            counters.failing_since = None;
            counters.alerted = 0;
            continue;
        }
        counters.last_failure_at = Some(outcome.at);
        counters.consecutive_failures = counters.consecutive_failures.saturating_add(1);
        let since = *counters.failing_since.get_or_insert(outcome.at);
        let streak = counters.consecutive_failures;
        if settings
            .failing_alert_at
            .iter()
            .any(|&at| at == streak && at > counters.alerted)
        {
            counters.alerted = streak;
            events.push(HealthEvent::Failing { attempt });
        }
        if outcome.exhausted {
            events.push(HealthEvent::Exhausted { attempt });
        }
        if disabled || disable.is_some() {
            continue;
        }
        let failing_for = (outcome.at - since).num_seconds();
        let reason = if outcome.gone {
            Some(DisableReason::Gone)
        } else if auto.after_failures > 0 && streak >= auto.after_failures {
            Some(DisableReason::ConsecutiveFailures)
        } else if auto.after_secs > 0
            && u64::try_from(failing_for).is_ok_and(|secs| secs >= auto.after_secs)
        {
            Some(DisableReason::FailingTooLong)
        } else {
            None
        };
        if let Some(reason) = reason {
            disable = Some(reason);
            events.push(HealthEvent::Disabled {
                attempt,
                reason,
                fail_since: Some(since),
            });
        }
    }
    counters.state = counters.state_under(settings);
    let state = counters.shown(disabled || disable.is_some());
    if state != previous {
        events.push(HealthEvent::StateChanged { previous, state });
    }
    Judgement {
        counters,
        disable,
        events,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::time::from_micros;

    fn at(secs: i64) -> Timestamp {
        from_micros(1_800_000_000_000_000) + TimeDelta::seconds(secs)
    }

    fn failed(secs: i64) -> Outcome {
        Outcome {
            success: false,
            at: at(secs),
            gone: false,
            exhausted: false,
        }
    }

    fn ok(secs: i64) -> Outcome {
        Outcome {
            success: true,
            ..failed(secs)
        }
    }

    fn off() -> AutoDisable {
        AutoDisable::default()
    }

    #[test]
    fn a_fresh_endpoint_is_healthy_with_nothing_to_show() {
        let c = HealthCounters::default();
        assert_eq!(c.state, HealthState::Healthy);
        assert_eq!(c.success_rate(), None);
        assert_eq!(c.window_attempts(), 0);
        assert_eq!(c.shown(true), HealthState::Disabled);
    }

    #[test]
    fn failing_is_sent_once_per_threshold_and_recovered_after_it() {
        let settings = HealthSettings::default();
        let outcomes: Vec<Outcome> = (0..11).map(failed).chain([ok(11)]).collect();
        let j = judge(
            HealthCounters::default(),
            false,
            &outcomes,
            &settings,
            off(),
        );
        let failing: Vec<usize> = j
            .events
            .iter()
            .filter_map(|e| match e {
                HealthEvent::Failing { attempt } => Some(*attempt),
                _ => None,
            })
            .collect();
        // The 3rd, 5th and 10th failed attempts reached the thresholds.
        assert_eq!(failing, [2, 4, 9]);
        assert!(j.events.contains(&HealthEvent::Recovered { attempt: 11 }));
        assert_eq!(j.counters.consecutive_failures, 0);
        assert_eq!(j.counters.failing_since, None);
        assert_eq!(j.counters.last_success_at, Some(at(11)));
        assert_eq!(j.counters.last_failure_at, Some(at(10)));
        // 1 success in 12: degraded, not failing any more.
        assert_eq!(j.counters.state, HealthState::Degraded);
        // The batch went healthy → (failing →) degraded: one change, before to after.
        assert_eq!(
            j.events.last(),
            Some(&HealthEvent::StateChanged {
                previous: HealthState::Healthy,
                state: HealthState::Degraded
            })
        );
    }

    #[test]
    fn a_success_without_an_alert_recovers_nothing() {
        let j = judge(
            HealthCounters::default(),
            false,
            &[failed(0), failed(1), ok(2)],
            &HealthSettings::default(),
            off(),
        );
        assert!(
            !j.events
                .iter()
                .any(|e| matches!(e, HealthEvent::Recovered { .. }))
        );
        assert_eq!(
            j.events,
            [HealthEvent::StateChanged {
                previous: HealthState::Healthy,
                state: HealthState::Degraded
            }]
        );
    }

    #[test]
    fn state_changes_are_reported_from_before_the_batch_to_after_it() {
        let settings = HealthSettings::default();
        let j = judge(
            HealthCounters::default(),
            false,
            &[failed(0), failed(1), failed(2)],
            &settings,
            off(),
        );
        assert_eq!(j.counters.state, HealthState::Failing);
        assert_eq!(
            j.events.last(),
            Some(&HealthEvent::StateChanged {
                previous: HealthState::Healthy,
                state: HealthState::Failing
            })
        );
    }

    #[test]
    fn auto_disable_by_count_by_time_and_by_gone() {
        let settings = HealthSettings::default();
        let count = AutoDisable {
            after_failures: 4,
            after_secs: 0,
        };
        let j = judge(
            HealthCounters::default(),
            false,
            &(0..6).map(failed).collect::<Vec<_>>(),
            &settings,
            count,
        );
        assert_eq!(j.disable, Some(DisableReason::ConsecutiveFailures));
        assert!(j.events.contains(&HealthEvent::Disabled {
            attempt: 3,
            reason: DisableReason::ConsecutiveFailures,
            fail_since: Some(at(0)),
        }));
        assert_eq!(
            j.events.last(),
            Some(&HealthEvent::StateChanged {
                previous: HealthState::Healthy,
                state: HealthState::Disabled
            })
        );

        let time = AutoDisable {
            after_failures: 0,
            after_secs: 100,
        };
        let j = judge(
            HealthCounters::default(),
            false,
            &[failed(0), failed(99)],
            &settings,
            time,
        );
        assert_eq!(j.disable, None);
        let j = judge(j.counters, false, &[failed(100)], &settings, time);
        assert_eq!(j.disable, Some(DisableReason::FailingTooLong));

        let gone = Outcome {
            gone: true,
            ..failed(0)
        };
        let j = judge(HealthCounters::default(), false, &[gone], &settings, off());
        assert_eq!(j.disable, Some(DisableReason::Gone));
    }

    #[test]
    fn a_disabled_endpoint_is_counted_but_not_disabled_again() {
        let j = judge(
            HealthCounters::default(),
            true,
            &(0..5).map(failed).collect::<Vec<_>>(),
            &HealthSettings::default(),
            AutoDisable {
                after_failures: 1,
                after_secs: 1,
            },
        );
        assert_eq!(j.disable, None);
        assert_eq!(j.counters.consecutive_failures, 5);
        assert!(!j.events.iter().any(|e| matches!(
            e,
            HealthEvent::Disabled { .. } | HealthEvent::StateChanged { .. }
        )));
    }

    #[test]
    fn overrides_replace_the_global_rules() {
        let global = AutoDisable {
            after_failures: 0,
            after_secs: 432_000,
        };
        assert_eq!(
            global.overridden(Some(3), None),
            AutoDisable {
                after_failures: 3,
                after_secs: 432_000
            }
        );
        assert_eq!(global.overridden(None, Some(0)).after_secs, 0);
    }

    fn outcomes() -> impl Strategy<Value = Vec<Outcome>> {
        prop::collection::vec((any::<bool>(), 0i64..50, any::<bool>()), 0..80).prop_map(|v| {
            let mut t = 0;
            v.into_iter()
                .map(|(success, gap, exhausted)| {
                    t += gap;
                    Outcome {
                        success,
                        at: at(t),
                        gone: false,
                        exhausted: exhausted && !success,
                    }
                })
                .collect()
        })
    }

    fn settings() -> impl Strategy<Value = HealthSettings> {
        (1usize..20, prop::collection::btree_set(1u32..12, 0..4)).prop_map(|(window, alerts)| {
            HealthSettings {
                window,
                degraded_below: 0.5,
                failing_alert_at: alerts.into_iter().collect(),
                auto_disable: AutoDisable::default(),
            }
        })
    }

    proptest! {
        #[test]
        fn counters_match_the_outcomes_they_summarise(
            outcomes in outcomes(), settings in settings()
        ) {
            let j = judge(HealthCounters::default(), false, &outcomes, &settings, off());
            let c = &j.counters;
            let trailing = outcomes.iter().rev().take_while(|o| !o.success).count();
            prop_assert_eq!(c.consecutive_failures as usize, trailing);
            let first_failure = outcomes.len() - trailing;
            prop_assert_eq!(c.failing_since, outcomes.get(first_failure).map(|o| o.at));
            let last: Vec<&Outcome> =
                outcomes.iter().skip(outcomes.len().saturating_sub(settings.window)).collect();
            prop_assert_eq!(c.window.len(), last.len());
            let ok = last.iter().filter(|o| o.success).count();
            let rate = (!last.is_empty()).then(|| ok as f64 / last.len() as f64);
            prop_assert_eq!(c.success_rate(), rate);
            prop_assert_eq!(c.last_success_at, outcomes.iter().rev().find(|o| o.success).map(|o| o.at));
            prop_assert_eq!(c.last_failure_at, outcomes.iter().rev().find(|o| !o.success).map(|o| o.at));
        }

        /// Each threshold is reported exactly once per streak that reaches it, at the attempt
        /// that reached it, however the outcomes are split into batches.
        #[test]
        fn failing_events_are_once_per_threshold_per_streak_in_any_batching(
            outcomes in outcomes(), settings in settings(), cuts in prop::collection::vec(0usize..80, 0..6)
        ) {
            let mut expected = Vec::new();
            let mut streak = 0u32;
            for (i, o) in outcomes.iter().enumerate() {
                streak = if o.success { 0 } else { streak + 1 };
                if !o.success && settings.failing_alert_at.contains(&streak) {
                    expected.push(i);
                }
            }
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= outcomes.len()).collect();
            cuts.extend([0, outcomes.len()]);
            cuts.sort_unstable();
            cuts.dedup();
            let mut counters = HealthCounters::default();
            let (mut failing, mut recovered, mut exhausted) = (Vec::new(), 0, 0);
            for pair in cuts.windows(2) {
                let j = judge(counters, false, &outcomes[pair[0]..pair[1]], &settings, off());
                for e in &j.events {
                    match e {
                        HealthEvent::Failing { attempt } => failing.push(pair[0] + attempt),
                        HealthEvent::Recovered { .. } => recovered += 1,
                        HealthEvent::Exhausted { .. } => exhausted += 1,
                        _ => {}
                    }
                }
                counters = j.counters;
            }
            let whole = judge(HealthCounters::default(), false, &outcomes, &settings, off());
            prop_assert_eq!(&counters, &whole.counters);
            prop_assert_eq!(failing, expected);
            prop_assert_eq!(exhausted, outcomes.iter().filter(|o| o.exhausted).count());
            // A recovery follows every streak that was alerted on and then ended.
            let mut alerted_streaks_ended = 0;
            let mut alerted = false;
            let mut streak = 0u32;
            for o in &outcomes {
                if o.success {
                    alerted_streaks_ended += usize::from(alerted);
                    alerted = false;
                    streak = 0;
                } else {
                    streak += 1;
                    alerted |= settings.failing_alert_at.contains(&streak);
                }
            }
            prop_assert_eq!(recovered, alerted_streaks_ended);
        }
    }
}
