//! When to try a failed delivery again: the retry schedule, its jitter, and how far a
//! receiver's `Retry-After` may move it.
//!
//! The schedule is a list of delays, one per retry; a delivery whose last retry fails is
//! given up. Each delay is spread by a random ±`jitter` fraction, so endpoints that failed
//! together (an outage) are not all retried in the same instant. The random sample is an
//! argument, not drawn here, so the math is deterministic and tested as such.

use std::time::{Duration, SystemTime};

/// The retry delays and how much they are spread.
///
/// Invariant: `0.0 <= jitter <= 1.0`, so every delay is between 0 and twice its entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    schedule: Vec<Duration>,
    jitter: f64,
}

impl RetryPolicy {
    /// `schedule[i]` is the delay before retry `i + 1`; `jitter` is a fraction (0.2 = ±20 %).
    /// A jitter outside 0..=1 is clamped into it (NaN counts as 0): configuration is
    /// validated before this, and a delay must never be negative.
    pub fn new(schedule: Vec<Duration>, jitter: f64) -> Self {
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        Self { schedule, jitter }
    }

    /// The schedule Svix documents: 5 seconds, 5 minutes, 30 minutes, 2 hours, 5 hours,
    /// 10 hours, 10 hours; about a day and a few hours from first failure to giving up.
    pub fn default_schedule() -> Vec<Duration> {
        [5, 300, 1800, 7200, 18000, 36000, 36000]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }

    /// How many retries follow the first attempt.
    pub fn retries(&self) -> usize {
        self.schedule.len()
    }

    /// The longest delay [`delay_before_retry`](Self::delay_before_retry) can return: the
    /// longest entry with the full jitter added. Zero for an empty schedule.
    pub fn max_delay(&self) -> Duration {
        self.schedule
            .iter()
            .map(|&delay| scale(delay, 1.0 + self.jitter))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// The delay before retry number `retry` (1 is the retry after the first failed
    /// attempt), or `None` when the schedule has no such retry and the delivery is given up.
    /// `unit` is a uniform random sample in [0, 1): 0 gives the shortest delay, the entry
    /// less the jitter, and 0.5 the entry itself. Samples outside [0, 1] are clamped into
    /// it (NaN counts as 0.5), which keeps the delay within ±jitter of the entry.
    pub fn delay_before_retry(&self, retry: usize, unit: f64) -> Option<Duration> {
        let base = *self.schedule.get(retry.checked_sub(1)?)?;
        let unit = if unit.is_nan() {
            0.5
        } else {
            unit.clamp(0.0, 1.0)
        };
        Some(scale(base, 1.0 - self.jitter + 2.0 * self.jitter * unit))
    }
}

/// `delay × factor` for a factor in [0, 2], saturating instead of panicking on overflow.
fn scale(delay: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(Duration::MAX)
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
