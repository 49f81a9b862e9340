//! Retry policies: when a failed delivery is tried again, how long each attempt may take, and
//! which answers are not worth a retry.
//!
//! A policy is data. The global default comes from the configuration (`retry_schedule`,
//! `retry_jitter`, `request_timeout_secs`); a message's `priority`, its event type and its
//! endpoint may each carry a policy of their own, and the most specific one present applies
//! (endpoint > event type > priority > default). A policy set on an entity may leave fields
//! out: those are taken from the global default, so `{"timeout": 5}` changes the timeout
//! only. Policies are resolved at every attempt, so a changed policy applies from the next
//! attempt of deliveries already pending.
//!
//! [`RetryPolicySpec`] is the shape the API and the store write (camelCase JSON);
//! [`RetryPolicy::parse`] checks it, naming the field that is wrong. The random sample the
//! jitter spreads delays with is an argument, so the math is deterministic and tested so.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The longest delay before one retry: 30 days.
pub const MAX_DELAY_SECS: i64 = 30 * 24 * 3600;
/// The most attempts a policy may make, the first one included.
pub const MAX_ATTEMPTS: i64 = 50;
/// The largest `factor` and `timeoutGrowth`.
const MAX_FACTOR: f64 = 100.0;
/// `factor` when an exponential policy gives none.
const DEFAULT_FACTOR: f64 = 2.0;

/// A retry policy as the API and the store write it. Every field is optional: what a policy
/// leaves out is the global default's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicySpec {
    /// The delay before each retry, in seconds: `[5, 300]` is two retries, 5 s after the
    /// first failure and 300 s after the second. At most 49 entries (50 attempts), each
    /// from 0 to 2592000 (30 days). Not with `exponential`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::opt_list"
    )]
    #[schema(value_type = Option<Vec<DelaySeconds>>, max_items = 49,
        example = json!([60, 300, 900, 3600, 14400]))]
    pub schedule: Option<Vec<i64>>,
    /// Exponentially growing delays. Not with `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential: Option<ExponentialSpec>,
    /// Each delay is spread by a random ± fraction of it (0.1 = ±10 %), from 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub jitter: Option<f64>,
    /// `false`: a 4xx answer fails the delivery at once, except 408, 425 and 429, which are
    /// retried (and 410, which disables the endpoint). Default `true`: every failure is
    /// retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on_4xx: Option<bool>,
    /// How long the first attempt may take, in seconds (1 to `max_request_timeout_secs`, 60
    /// unless the server is configured otherwise).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::opt"
    )]
    #[schema(minimum = 1, maximum = 60)]
    pub timeout: Option<i64>,
    /// The timeout is multiplied by this at each further attempt (1 to 100; default 1, a
    /// fixed timeout), up to `maxTimeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1.0, maximum = 100.0)]
    pub timeout_growth: Option<f64>,
    /// The most a growing timeout reaches, in seconds (from `timeout` to
    /// `max_request_timeout_secs`, which is the default; 60 unless the server is configured
    /// otherwise).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::opt"
    )]
    #[schema(minimum = 1, maximum = 60)]
    pub max_timeout: Option<i64>,
}

/// Seconds before one retry: the items of `schedule`.
pub struct DelaySeconds;

impl utoipa::PartialSchema for DelaySeconds {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .maximum(Some(MAX_DELAY_SECS))
            .description(Some("Seconds before one retry, 0 to 2592000 (30 days)."))
            .into()
    }
}

impl utoipa::ToSchema for DelaySeconds {}

/// Delays of `base × factor^(n-1)` seconds before retry `n`, at most `maxDelay`, for at
/// most `maxAttempts` attempts in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExponentialSpec {
    /// The first delay, in seconds (1 to 2592000).
    #[serde(deserialize_with = "whole::one")]
    #[schema(minimum = 1, maximum = 2592000)]
    pub base: i64,
    /// How much each delay grows over the one before (1 to 100; default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1.0, maximum = 100.0)]
    pub factor: Option<f64>,
    /// The longest delay, in seconds (from `base` to 2592000, the default).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::opt"
    )]
    #[schema(minimum = 1, maximum = 2592000)]
    pub max_delay: Option<i64>,
    /// Attempts in all, the first one included (1 to 50; 1 is no retry).
    #[serde(deserialize_with = "whole::one")]
    #[schema(minimum = 1, maximum = 50)]
    pub max_attempts: i64,
}

/// Whole numbers of seconds or attempts, also when written with a zero fraction (`5.0`),
/// which JSON Schema counts as integers too; a fraction or a number beyond `i64` is refused.
pub mod whole {
    use serde::{Deserialize, Deserializer, de::Error};

    fn number<E: Error>(n: serde_json::Number) -> Result<i64, E> {
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
            _ => Err(E::custom(format!("{n} is not a whole number"))),
        }
    }

    pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        number(serde_json::Number::deserialize(d)?)
    }

    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .map(number)
            .transpose()
    }

    pub fn opt_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i64>>, D::Error> {
        Option::<Vec<serde_json::Number>>::deserialize(d)?
            .map(|list| list.into_iter().map(number).collect())
            .transpose()
    }
}

/// What is wrong with a policy: the field (a path under the policy) and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct PolicyError {
    pub field: Vec<String>,
    pub message: String,
}

fn error(field: &[&str], message: impl Into<String>) -> PolicyError {
    PolicyError {
        field: field.iter().map(|f| (*f).to_owned()).collect(),
        message: message.into(),
    }
}

/// How the delays before retries are computed.
#[derive(Debug, Clone, PartialEq)]
pub enum Delays {
    /// `schedule[i]` is the delay before retry `i + 1`.
    Schedule(Vec<Duration>),
    Exponential {
        base: Duration,
        factor: f64,
        max_delay: Duration,
        /// Retries after the first attempt (`maxAttempts - 1`).
        retries: usize,
    },
}

impl Delays {
    fn retries(&self) -> usize {
        match self {
            Self::Schedule(s) => s.len(),
            Self::Exponential { retries, .. } => *retries,
        }
    }

    /// The delay before retry `retry` (1-based) before jitter, if there is such a retry.
    fn base_delay(&self, retry: usize) -> Option<Duration> {
        let index = retry.checked_sub(1)?;
        match self {
            Self::Schedule(s) => s.get(index).copied(),
            Self::Exponential {
                base,
                factor,
                max_delay,
                retries,
            } => {
                if index >= *retries {
                    return None;
                }
                let power = i32::try_from(index).unwrap_or(i32::MAX);
                let secs = base.as_secs_f64() * factor.powi(power);
                Some(
                    Duration::try_from_secs_f64(secs)
                        .unwrap_or(Duration::MAX)
                        .min(*max_delay),
                )
            }
        }
    }

    fn longest(&self) -> Duration {
        match self {
            Self::Schedule(s) => s.iter().copied().max().unwrap_or(Duration::ZERO),
            Self::Exponential { retries: 0, .. } => Duration::ZERO,
            Self::Exponential { .. } => (1..=self.retries())
                .filter_map(|r| self.base_delay(r))
                .max()
                .unwrap_or(Duration::ZERO),
        }
    }
}

/// A checked policy. `None` fields are the global default's (see [`Effective`]); the global
/// default itself has them all.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub delays: Option<Delays>,
    /// In 0..=1.
    pub jitter: Option<f64>,
    pub retry_on_4xx: Option<bool>,
    pub timeout: Option<Duration>,
    /// At least 1.
    pub timeout_growth: Option<f64>,
    pub max_timeout: Option<Duration>,
}

impl RetryPolicy {
    /// A complete policy of `schedule` (delays before each retry) and `jitter` (a fraction:
    /// 0.2 = ±20 %; one outside 0..=1 is clamped into it, NaN counts as 0), every failure
    /// retried, attempts bounded by `timeout`.
    pub fn new(schedule: Vec<Duration>, jitter: f64) -> Self {
        Self::complete(schedule, jitter, Duration::from_secs(15))
    }

    /// [`new`](Self::new) with the attempts' timeout.
    pub fn complete(schedule: Vec<Duration>, jitter: f64, timeout: Duration) -> Self {
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        Self {
            delays: Some(Delays::Schedule(schedule)),
            jitter: Some(jitter),
            retry_on_4xx: Some(true),
            timeout: Some(timeout),
            timeout_growth: Some(1.0),
            max_timeout: None,
        }
    }

    /// The schedule Svix documents: 5 seconds, 5 minutes, 30 minutes, 2 hours, 5 hours,
    /// 10 hours, 10 hours; about a day and a few hours from first failure to giving up.
    pub fn default_schedule() -> Vec<Duration> {
        [5, 300, 1800, 7200, 18000, 36000, 36000]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }

    /// Checks `spec`; `max_timeout` is `max_request_timeout_secs`, the bound of any timeout.
    /// The error's field is a path under the policy (`["schedule", "2"]`).
    pub fn parse(spec: &RetryPolicySpec, max_timeout: Duration) -> Result<Self, PolicyError> {
        let delays = match (&spec.schedule, &spec.exponential) {
            (Some(_), Some(_)) => {
                return Err(error(
                    &["exponential"],
                    "give either schedule or exponential, not both",
                ));
            }
            (Some(schedule), None) => {
                if schedule.len() >= MAX_ATTEMPTS as usize {
                    return Err(error(
                        &["schedule"],
                        format!(
                            "must have at most {} delays ({MAX_ATTEMPTS} attempts)",
                            MAX_ATTEMPTS - 1
                        ),
                    ));
                }
                let mut delays = Vec::with_capacity(schedule.len());
                for (i, &secs) in schedule.iter().enumerate() {
                    if !(0..=MAX_DELAY_SECS).contains(&secs) {
                        return Err(error(
                            &["schedule", &i.to_string()],
                            format!("must be from 0 to {MAX_DELAY_SECS} seconds (30 days)"),
                        ));
                    }
                    delays.push(Duration::from_secs(secs.unsigned_abs()));
                }
                Some(Delays::Schedule(delays))
            }
            (None, Some(e)) => Some(exponential(e)?),
            (None, None) => None,
        };
        if let Some(jitter) = spec.jitter
            && !(0.0..=1.0).contains(&jitter)
        {
            return Err(error(&["jitter"], "must be from 0 to 1"));
        }
        let max_secs = max_timeout.as_secs();
        let timeout = match spec.timeout {
            Some(t) if t < 1 || t.unsigned_abs() > max_secs => {
                return Err(error(
                    &["timeout"],
                    format!("must be from 1 to {max_secs} seconds (max_request_timeout_secs)"),
                ));
            }
            t => t.map(|t| Duration::from_secs(t.unsigned_abs())),
        };
        if let Some(growth) = spec.timeout_growth
            && !(1.0..=MAX_FACTOR).contains(&growth)
        {
            return Err(error(&["timeoutGrowth"], "must be from 1 to 100"));
        }
        let max = match spec.max_timeout {
            Some(t) if t < 1 || t.unsigned_abs() > max_secs => {
                return Err(error(
                    &["maxTimeout"],
                    format!("must be from 1 to {max_secs} seconds (max_request_timeout_secs)"),
                ));
            }
            Some(t) if spec.timeout.is_some_and(|first| t < first) => {
                return Err(error(&["maxTimeout"], "must not be less than timeout"));
            }
            t => t.map(|t| Duration::from_secs(t.unsigned_abs())),
        };
        Ok(Self {
            delays,
            jitter: spec.jitter,
            retry_on_4xx: spec.retry_on_4xx,
            timeout,
            timeout_growth: spec.timeout_growth,
            max_timeout: max,
        })
    }

    /// The policy as the API and the store write it.
    pub fn spec(&self) -> RetryPolicySpec {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let (schedule, exponential) = match &self.delays {
            None => (None, None),
            Some(Delays::Schedule(s)) => (Some(s.iter().map(|d| secs(*d)).collect()), None),
            Some(Delays::Exponential {
                base,
                factor,
                max_delay,
                retries,
            }) => (
                None,
                Some(ExponentialSpec {
                    base: secs(*base),
                    factor: Some(*factor),
                    max_delay: Some(secs(*max_delay)),
                    max_attempts: i64::try_from(*retries).unwrap_or(i64::MAX) + 1,
                }),
            ),
        };
        RetryPolicySpec {
            schedule,
            exponential,
            jitter: self.jitter,
            retry_on_4xx: self.retry_on_4xx,
            timeout: self.timeout.map(secs),
            timeout_growth: self.timeout_growth,
            max_timeout: self.max_timeout.map(secs),
        }
    }

    /// This policy over `default` (which has every field): what applies.
    pub fn over<'a>(&'a self, default: &'a RetryPolicy) -> Effective<'a> {
        Effective { own: self, default }
    }

    /// For a complete policy (the global default): [`Effective::retries`].
    pub fn retries(&self) -> usize {
        self.over(self).retries()
    }

    /// For a complete policy: [`Effective::max_delay`].
    pub fn max_delay(&self) -> Duration {
        self.over(self).max_delay()
    }

    /// For a complete policy: [`Effective::delay_before_retry`].
    pub fn delay_before_retry(&self, retry: usize, unit: f64) -> Option<Duration> {
        self.over(self).delay_before_retry(retry, unit)
    }

    /// The delays before retries without jitter, in whole seconds, if this policy sets them.
    pub fn delays_secs(&self) -> Option<Vec<u64>> {
        let delays = self.delays.as_ref()?;
        Some(
            (1..=delays.retries())
                .filter_map(|r| delays.base_delay(r))
                .map(|d| d.as_secs())
                .collect(),
        )
    }
}

fn exponential(e: &ExponentialSpec) -> Result<Delays, PolicyError> {
    if !(1..=MAX_DELAY_SECS).contains(&e.base) {
        return Err(error(
            &["exponential", "base"],
            format!("must be from 1 to {MAX_DELAY_SECS} seconds (30 days)"),
        ));
    }
    let factor = e.factor.unwrap_or(DEFAULT_FACTOR);
    if !(1.0..=MAX_FACTOR).contains(&factor) {
        return Err(error(&["exponential", "factor"], "must be from 1 to 100"));
    }
    let max_delay = e.max_delay.unwrap_or(MAX_DELAY_SECS);
    if !(e.base..=MAX_DELAY_SECS).contains(&max_delay) {
        return Err(error(
            &["exponential", "maxDelay"],
            format!("must be from base to {MAX_DELAY_SECS} seconds (30 days)"),
        ));
    }
    if !(1..=MAX_ATTEMPTS).contains(&e.max_attempts) {
        return Err(error(
            &["exponential", "maxAttempts"],
            format!("must be from 1 to {MAX_ATTEMPTS}"),
        ));
    }
    Ok(Delays::Exponential {
        base: Duration::from_secs(e.base.unsigned_abs()),
        factor,
        max_delay: Duration::from_secs(max_delay.unsigned_abs()),
        retries: usize::try_from(e.max_attempts - 1).unwrap_or(0),
    })
}

/// A policy over the global default: each field is the policy's if it sets it, the
/// default's otherwise. Borrowed, so resolving one per attempt allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Effective<'a> {
    own: &'a RetryPolicy,
    default: &'a RetryPolicy,
}

impl Effective<'_> {
    fn delays(&self) -> Option<&Delays> {
        self.own.delays.as_ref().or(self.default.delays.as_ref())
    }

    fn jitter(&self) -> f64 {
        self.own.jitter.or(self.default.jitter).unwrap_or(0.0)
    }

    /// How many retries follow the first attempt.
    pub fn retries(&self) -> usize {
        self.delays().map_or(0, Delays::retries)
    }

    /// The longest delay [`delay_before_retry`](Self::delay_before_retry) can return: the
    /// longest delay with the full jitter added.
    pub fn max_delay(&self) -> Duration {
        self.delays()
            .map_or(Duration::ZERO, |d| scale(d.longest(), 1.0 + self.jitter()))
    }

    /// The delay before retry number `retry` (1 is the retry after the first failed
    /// attempt), or `None` when the policy has no such retry and the delivery is given up.
    /// `unit` is a uniform random sample in [0, 1): 0 gives the shortest delay, the delay
    /// less the jitter, and 0.5 the delay itself. Samples outside [0, 1] are clamped into
    /// it (NaN counts as 0.5).
    pub fn delay_before_retry(&self, retry: usize, unit: f64) -> Option<Duration> {
        let base = self.delays()?.base_delay(retry)?;
        let unit = if unit.is_nan() {
            0.5
        } else {
            unit.clamp(0.0, 1.0)
        };
        let jitter = self.jitter();
        Some(scale(base, 1.0 - jitter + 2.0 * jitter * unit))
    }

    /// Whether an answer with `status` (not 2xx, not 410) is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        let retry_4xx = self.own.retry_on_4xx.or(self.default.retry_on_4xx);
        retry_4xx.unwrap_or(true) || !(400..500).contains(&status) || is_transient_4xx(status)
    }

    /// The timeout of attempt `attempt` (0 is the first): `timeout × timeoutGrowth^attempt`,
    /// at most `maxTimeout` and never more than `cap` (`max_request_timeout_secs`).
    pub fn timeout(&self, attempt: u32, cap: Duration) -> Duration {
        let first = self
            .own
            .timeout
            .or(self.default.timeout)
            .unwrap_or(cap)
            .min(cap);
        let growth = self
            .own
            .timeout_growth
            .or(self.default.timeout_growth)
            .unwrap_or(1.0);
        let max = self
            .own
            .max_timeout
            .or(self.default.max_timeout)
            .unwrap_or(cap)
            .min(cap)
            .max(first);
        if growth <= 1.0 || attempt == 0 {
            return first;
        }
        let power = i32::try_from(attempt).unwrap_or(i32::MAX);
        scale(first, growth.powi(power)).min(max)
    }
}

/// 4xx answers that say "later" rather than "never": Request Timeout, Too Early, Too Many
/// Requests. They are retried even when `retryOn4xx` is false.
pub fn is_transient_4xx(status: u16) -> bool {
    matches!(status, 408 | 425 | 429)
}

/// `delay × factor` for a non-negative factor, saturating instead of panicking on overflow.
fn scale(delay: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// Where the policy an attempt ran under came from (`policy` on MessageAttemptOut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    Endpoint,
    EventType,
    Priority(Priority),
    Default,
}

impl PolicySource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Endpoint => "endpoint",
            Self::EventType => "eventType",
            Self::Priority(p) => p.source(),
            Self::Default => "default",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "endpoint" => Self::Endpoint,
            "eventType" => Self::EventType,
            "default" => Self::Default,
            other => Self::Priority(Priority::parse(other.strip_prefix("priority:")?)?),
        })
    }
}

/// A message's priority (`priority` on MessageIn), each mapped to a policy in the
/// configuration (`retry_policy_high`, …). A message without one is `normal`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Self::High, Self::Normal, Self::Low];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "high" => Some(Self::High),
            "normal" => Some(Self::Normal),
            "low" => Some(Self::Low),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }

    /// The stored code (`message.priority`).
    pub fn code(self) -> i64 {
        match self {
            Self::High => 1,
            Self::Normal => 2,
            Self::Low => 3,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(Self::High),
            2 => Some(Self::Normal),
            3 => Some(Self::Low),
            _ => None,
        }
    }

    /// The source an attempt under this priority's policy shows (`priority:high`).
    pub fn source(self) -> &'static str {
        match self {
            Self::High => "priority:high",
            Self::Normal => "priority:normal",
            Self::Low => "priority:low",
        }
    }
}

#[cfg(test)]
mod tests;
