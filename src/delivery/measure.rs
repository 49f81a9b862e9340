//! What the dispatcher measures as it goes: attempts by outcome and error class, how long
//! they took, how long a message waited for its first attempt, and attempts in flight.
//!
//! Every handle is registered once, when the node starts (by the `metrics` module), so an
//! attempt costs a few atomic updates: no lookup by name, no lock, no allocation.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use super::sender::SendResult;
use crate::domain::ErrorClass;

/// The `error_class` label of an attempt: `none` when it succeeded; otherwise the sender's
/// error class, with an HTTP status split by its class (`http_4xx`, `http_5xx`, `http_other`
/// for 1xx and 3xx).
pub const ATTEMPT_CLASSES: [&str; 10] = [
    "none",
    "timeout",
    "connect",
    "dns",
    "tls",
    "ssrf_refused",
    "http_4xx",
    "http_5xx",
    "http_other",
    // A 2xx is a success; kept for a failed attempt the table above cannot name.
    "other",
];

/// Handles of the delivery metrics; [`DeliveryMetrics::noop`] measures nothing.
#[derive(Debug, Clone)]
pub struct DeliveryMetrics {
    /// One counter per [`ATTEMPT_CLASSES`] entry (`none` is the successes).
    pub attempts: [Counter; ATTEMPT_CLASSES.len()],
    pub attempt_seconds: Histogram,
    pub first_attempt_latency_seconds: Histogram,
    pub in_flight: Gauge,
}

impl DeliveryMetrics {
    pub fn noop() -> Self {
        Self {
            attempts: std::array::from_fn(|_| Counter::noop()),
            attempt_seconds: Histogram::noop(),
            first_attempt_latency_seconds: Histogram::noop(),
            in_flight: Gauge::noop(),
        }
    }

    /// Counts an attempt and records its duration.
    pub(super) fn attempt(&self, result: &SendResult) {
        self.attempts[class_index(result)].increment(1);
        self.attempt_seconds.record(result.duration.as_secs_f64());
    }

    /// A message's first scheduled attempt started `waited` after it was accepted.
    pub(super) fn first_attempt(&self, waited: Duration) {
        self.first_attempt_latency_seconds
            .record(waited.as_secs_f64());
    }
}

/// The index in [`ATTEMPT_CLASSES`] of an attempt's outcome.
pub fn class_index(result: &SendResult) -> usize {
    match &result.outcome {
        Ok(r) => match r.status {
            200..=299 => 0,
            400..=499 => 6,
            500..=599 => 7,
            _ => 8,
        },
        Err(e) => match e.class {
            ErrorClass::Timeout => 1,
            ErrorClass::Connect => 2,
            ErrorClass::Dns => 3,
            ErrorClass::Tls => 4,
            ErrorClass::SsrfRefused => 5,
            ErrorClass::HttpStatus => 9,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::delivery::sender::Response;
    use crate::domain::AttemptError;

    fn answered(status: u16) -> SendResult {
        SendResult {
            duration: Duration::from_millis(3),
            request_headers: Default::default(),
            outcome: Ok(Response {
                status,
                headers: BTreeMap::new(),
                body: String::new(),
                retry_after: None,
            }),
        }
    }

    fn failed(class: ErrorClass) -> SendResult {
        SendResult {
            duration: Duration::from_millis(3),
            request_headers: Default::default(),
            outcome: Err(AttemptError {
                class,
                message: String::new(),
            }),
        }
    }

    #[test]
    fn outcomes_get_their_class() {
        let label = |r: &SendResult| ATTEMPT_CLASSES[class_index(r)];
        assert_eq!(label(&answered(204)), "none");
        assert_eq!(label(&answered(410)), "http_4xx");
        assert_eq!(label(&answered(503)), "http_5xx");
        assert_eq!(label(&answered(302)), "http_other");
        assert_eq!(label(&failed(ErrorClass::Timeout)), "timeout");
        assert_eq!(label(&failed(ErrorClass::Connect)), "connect");
        assert_eq!(label(&failed(ErrorClass::Dns)), "dns");
        assert_eq!(label(&failed(ErrorClass::Tls)), "tls");
        assert_eq!(label(&failed(ErrorClass::SsrfRefused)), "ssrf_refused");
    }
}
