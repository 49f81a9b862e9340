//! When to try a failed delivery again: the retry policy (see [`crate::domain::retry`]: a
//! schedule or exponential delays, their jitter, the attempts' timeouts), which policy
//! applies to a delivery ([`Policies`]), and how far a receiver's `Retry-After` may move it.
//!
//! Each delay is spread by a random ±`jitter` fraction, so endpoints that failed together
//! (an outage) are not all retried in the same instant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

pub use crate::domain::RetryPolicy;
use crate::domain::retry::{Effective, PolicySource};
use crate::domain::{EventTypeName, Priority};
use crate::store::{ClaimedDelivery, Store};

/// How long a node trusts its copy of the event types' policies before reading them again.
/// A change made through this node's API applies at once (it invalidates the copy); one made
/// through another node's applies within this.
pub const EVENT_TYPE_REFRESH: Duration = Duration::from_secs(5);

/// Every policy a delivery may run under, and which one applies: the endpoint's, else its
/// message's event type's, else its message's priority's, else the global default. Fields a
/// policy leaves out are the default's.
pub struct Policies {
    default: RetryPolicy,
    /// By priority: high, normal, low.
    priorities: [Option<RetryPolicy>; 3],
    /// `max_request_timeout_secs`: no attempt's timeout exceeds it.
    cap: Duration,
    event_types: EventTypePolicies,
}

/// The policy one attempt runs under, with where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    pub policy: Effective<'a>,
    pub source: PolicySource,
}

impl Policies {
    pub fn new(
        default: RetryPolicy,
        priorities: [Option<RetryPolicy>; 3],
        max_timeout: Duration,
    ) -> Self {
        Self {
            default,
            priorities,
            cap: max_timeout,
            event_types: EventTypePolicies::default(),
        }
    }

    /// The longest any attempt may take.
    pub fn max_timeout(&self) -> Duration {
        self.cap
    }

    /// The event types' policies: the node's copy, read again first if it was invalidated
    /// or is older than [`EVENT_TYPE_REFRESH`] (by one caller; the others use the copy
    /// meanwhile). Cheap when fresh: a read lock and a reference count.
    pub async fn event_types(&self, store: &dyn Store) -> Arc<EventTypeMap> {
        self.event_types.current(store).await
    }

    /// The event types' policies changed: read them again before the next attempt.
    pub fn event_types_changed(&self) {
        self.event_types.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Which policy `delivery`'s next attempt runs under.
    pub fn resolve<'a>(
        &'a self,
        delivery: &'a ClaimedDelivery,
        event_types: &'a EventTypeMap,
    ) -> Resolved<'a> {
        let (own, source) = if let Some(own) = &delivery.endpoint.retry_policy {
            (&**own, PolicySource::Endpoint)
        } else if let Some(own) = (!event_types.is_empty())
            .then(|| event_types.get(&delivery.message.event_type))
            .flatten()
        {
            (&**own, PolicySource::EventType)
        } else {
            let priority = delivery.message.priority.unwrap_or_default();
            match &self.priorities[priority_index(priority)] {
                Some(own) => (own, PolicySource::Priority(priority)),
                None => (&self.default, PolicySource::Default),
            }
        };
        Resolved {
            policy: own.over(&self.default),
            source,
        }
    }
}

fn priority_index(p: Priority) -> usize {
    match p {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

/// The policies of event types that have one, by name.
pub type EventTypeMap = HashMap<EventTypeName, Arc<RetryPolicy>>;

#[derive(Default)]
struct EventTypePolicies {
    /// Bumped by every change made through this node.
    generation: AtomicU64,
    copy: RwLock<Copy>,
    reading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Copy {
    map: Arc<EventTypeMap>,
    generation: u64,
    /// `None`: never read.
    read_at: Option<Instant>,
}

impl EventTypePolicies {
    async fn current(&self, store: &dyn Store) -> Arc<EventTypeMap> {
        let generation = self.generation.load(Ordering::Acquire);
        let (stale, must_wait) = match self.fresh(generation) {
            Ok(map) => return map,
            Err(stale) => stale,
        };
        // Never read, or changed through this node: wait for the copy, so that no attempt
        // runs under a policy the node knows to be gone. Only old: one caller reads it
        // again, the others go on with the copy meanwhile.
        let _reading = if must_wait {
            self.reading.lock().await
        } else {
            match self.reading.try_lock() {
                Ok(guard) => guard,
                Err(_) => return stale,
            }
        };
        let generation = self.generation.load(Ordering::Acquire);
        let stale = match self.fresh(generation) {
            Ok(map) => return map,
            Err((stale, _)) => stale,
        };
        let map = match store.event_type_retry_policies().await {
            Ok(found) => Arc::new(
                found
                    .into_iter()
                    .map(|(name, policy)| (name, Arc::new(policy)))
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "reading the event types' retry policies failed");
                stale
            }
        };
        let mut copy = self.copy.write().unwrap_or_else(|e| e.into_inner());
        *copy = Copy {
            map: map.clone(),
            generation,
            read_at: Some(Instant::now()),
        };
        map
    }

    /// The copy if it is fresh for `generation`; otherwise the copy, and whether it must be
    /// waited for (never read, or invalidated).
    fn fresh(&self, generation: u64) -> Result<Arc<EventTypeMap>, (Arc<EventTypeMap>, bool)> {
        let copy = self.copy.read().unwrap_or_else(|e| e.into_inner());
        let must_wait = copy.read_at.is_none() || copy.generation != generation;
        let old = copy
            .read_at
            .is_none_or(|at| at.elapsed() >= EVENT_TYPE_REFRESH);
        if must_wait || old {
            Err((copy.map.clone(), must_wait))
        } else {
            Ok(copy.map.clone())
        }
    }
}

/// Parses a `Retry-After` header value: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`; the obsolete RFC 850 and asctime forms too, as
/// RFC 9110 asks of recipients). A date in the past is a wait of zero. Anything else, a
/// negative or fractional number included, is `None`: the header is then ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits, so the only way parsing fails is overflow: a wait longer than any
        // cap, which `bounded_retry_after` brings back down.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How long to wait before a retry the receiver asked to delay with `Retry-After`.
///
/// A receiver may slow us down, but not speed us up nor park a message forever: the wait
/// is the `retry_after` it asked for, but never less than the `scheduled` delay (so a
/// `Retry-After: 0` cannot make us hammer it) and never more than `max` (so a date years
/// away cannot hold a delivery past any useful time). `max` caps only what the receiver
/// asks for: when `scheduled` already exceeds it, the scheduled delay stands.
pub fn bounded_retry_after(
    scheduled: Duration,
    retry_after: Option<Duration>,
    max: Duration,
) -> Duration {
    match retry_after {
        Some(asked) => asked.min(max).max(scheduled),
        None => scheduled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(RetryPolicy::default_schedule(), 0.2)
    }

    #[test]
    fn default_schedule_is_the_documented_one() {
        let schedule = RetryPolicy::default_schedule();
        assert_eq!(
            schedule,
            [5, 300, 1800, 7200, 18000, 36000, 36000].map(secs)
        );
        let policy = policy();
        assert_eq!(policy.retries(), 7);
        assert_eq!(policy.max_delay(), secs(43200));
    }

    #[test]
    fn retries_are_one_based_and_end_with_the_schedule() {
        let policy = policy();
        assert_eq!(policy.delay_before_retry(0, 0.5), None);
        assert_eq!(policy.delay_before_retry(1, 0.5), Some(secs(5)));
        assert_eq!(policy.delay_before_retry(2, 0.5), Some(secs(300)));
        assert_eq!(policy.delay_before_retry(7, 0.5), Some(secs(36000)));
        assert_eq!(policy.delay_before_retry(8, 0.5), None);
        assert_eq!(policy.delay_before_retry(usize::MAX, 0.5), None);
    }

    #[test]
    fn unit_sample_spans_plus_minus_jitter() {
        let policy = policy();
        assert_eq!(policy.delay_before_retry(2, 0.0), Some(secs(240)));
        assert_eq!(policy.delay_before_retry(2, 0.75), Some(secs(330)));
        assert_eq!(policy.delay_before_retry(2, 1.0), Some(secs(360)));
        // Out-of-range samples are clamped rather than stretching the delay.
        assert_eq!(policy.delay_before_retry(2, -3.0), Some(secs(240)));
        assert_eq!(policy.delay_before_retry(2, 7.0), Some(secs(360)));
        assert_eq!(policy.delay_before_retry(2, f64::NAN), Some(secs(300)));
    }

    #[test]
    fn jitter_is_clamped_to_a_fraction() {
        let schedule = vec![secs(100)];
        let none = RetryPolicy::new(schedule.clone(), 0.0);
        assert_eq!(none.delay_before_retry(1, 0.99), Some(secs(100)));
        for bad in [-0.5, f64::NAN] {
            let policy = RetryPolicy::new(schedule.clone(), bad);
            assert_eq!(policy.delay_before_retry(1, 0.0), Some(secs(100)), "{bad}");
        }
        let full = RetryPolicy::new(schedule, 5.0);
        assert_eq!(full.delay_before_retry(1, 0.0), Some(Duration::ZERO));
        assert_eq!(full.max_delay(), secs(200));
    }

    #[test]
    fn huge_delays_saturate_instead_of_panicking() {
        let policy = RetryPolicy::new(vec![Duration::MAX], 0.5);
        assert_eq!(policy.delay_before_retry(1, 0.99), Some(Duration::MAX));
        assert_eq!(policy.max_delay(), Duration::MAX);
        assert_eq!(RetryPolicy::new(vec![], 0.2).max_delay(), Duration::ZERO);
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = SystemTime::UNIX_EPOCH + secs(1_700_000_000);
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(secs(u64::MAX))
        );
        for garbage in ["", " ", "-5", "+5", "1.5", "5s", "0x10", "١٢", "soon"] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    #[test]
    fn retry_after_as_a_date() {
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 in Unix time (RFC 9110's example).
        let date = SystemTime::UNIX_EPOCH + secs(784_111_777);
        let now = date - secs(90);
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_retry_after(form, now), Some(secs(90)), "{form}");
        }
        let later = date + secs(3600);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", date),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 31 Nov 1994 08:49:37 GMT", now),
            None
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 PST", now),
            None
        );
    }

    #[test]
    fn retry_after_is_bounded_by_schedule_and_max() {
        let (scheduled, max) = (secs(300), secs(3600));
        assert_eq!(bounded_retry_after(scheduled, None, max), scheduled);
        assert_eq!(
            bounded_retry_after(scheduled, Some(Duration::ZERO), max),
            scheduled
        );
        assert_eq!(
            bounded_retry_after(scheduled, Some(secs(900)), max),
            secs(900)
        );
        assert_eq!(bounded_retry_after(scheduled, Some(secs(86400)), max), max);
        // The schedule wins over the cap.
        assert_eq!(
            bounded_retry_after(secs(7200), Some(secs(86400)), max),
            secs(7200)
        );
    }

    proptest! {
        #[test]
        fn delays_stay_within_jitter_of_the_schedule(
            schedule in proptest::collection::vec(0u64..1_000_000, 0..10),
            jitter in 0.0f64..=1.0, unit in 0.0f64..1.0, retry in 0usize..12,
        ) {
            let schedule: Vec<Duration> = schedule.into_iter().map(secs).collect();
            let policy = RetryPolicy::new(schedule.clone(), jitter);
            let delay = policy.delay_before_retry(retry, unit);
            match retry.checked_sub(1).and_then(|i| schedule.get(i)) {
                None => prop_assert_eq!(delay, None),
                Some(&base) => {
                    let delay = delay.expect("a scheduled retry has a delay").as_secs_f64();
                    let base = base.as_secs_f64();
                    // 1 µs of slack for float rounding; the delays are whole seconds.
                    prop_assert!(delay >= base * (1.0 - jitter) - 1e-6, "{delay} < {base} - {jitter}");
                    prop_assert!(delay <= base * (1.0 + jitter) + 1e-6, "{delay} > {base} + {jitter}");
                    prop_assert!(Duration::from_secs_f64(delay) <= policy.max_delay() + Duration::from_micros(1));
                }
            }
        }

        #[test]
        fn delta_seconds_round_trip(seconds in any::<u64>()) {
            let now = SystemTime::UNIX_EPOCH;
            prop_assert_eq!(parse_retry_after(&seconds.to_string(), now), Some(secs(seconds)));
        }

        #[test]
        fn http_dates_round_trip(unix in 0u64..253_402_300_799, offset in 0u64..1_000_000) {
            let date = SystemTime::UNIX_EPOCH + secs(unix);
            let text = httpdate::fmt_http_date(date);
            prop_assert_eq!(parse_retry_after(&text, date - secs(offset.min(unix))), Some(secs(offset.min(unix))));
            prop_assert_eq!(parse_retry_after(&text, date + secs(offset)), Some(Duration::ZERO));
        }

        #[test]
        fn parse_retry_after_never_panics(
            value in prop_oneof![
                ".*",
                "[0-9 +.-]{0,30}",
                "(Sun|Mon|Xyz), [0-9]{2} (Nov|Feb|Foo) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} (GMT|UTC)",
            ],
            now in any::<u64>(),
        ) {
            let now = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(now)).unwrap_or(SystemTime::UNIX_EPOCH);
            let _ = parse_retry_after(&value, now);
        }

        #[test]
        fn bounded_wait_respects_both_bounds(scheduled in any::<u32>(), asked in proptest::option::of(any::<u32>()), max in any::<u32>()) {
            let (scheduled, max) = (secs(scheduled.into()), secs(max.into()));
            let asked = asked.map(|s| secs(s.into()));
            let wait = bounded_retry_after(scheduled, asked, max);
            prop_assert!(wait >= scheduled);
            prop_assert!(wait <= scheduled.max(max));
            if let Some(asked) = asked.filter(|&a| a >= scheduled && a <= max) {
                prop_assert_eq!(wait, asked);
            }
        }
    }
}
