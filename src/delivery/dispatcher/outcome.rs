//! What an attempt's outcome means: what becomes of the delivery (delivered, retried at
//! some time, failed, or its endpoint disabled) and the attempt as it is recorded.
//!
//! How an outcome bears on the endpoint's concurrency (overload halves its limit and pauses
//! it) is the board's business, not this module's.

use super::delta;
use crate::delivery::policy::bounded_retry_after;
use crate::delivery::sender::{Response, SendResult};
use crate::domain::retry::Effective;
use crate::domain::{Attempt, AttemptError, AttemptId, DeliveryStatus, ErrorClass, Timestamp};
use crate::store::{ClaimedDelivery, NextStep};

/// What becomes of a delivery after an attempt (see the README's delivery semantics).
pub fn next_step(
    result: &SendResult,
    attempts_before: u32,
    retry: &Effective<'_>,
    unit: f64,
    now: Timestamp,
) -> NextStep {
    match &result.outcome {
        Ok(r) if (200..300).contains(&r.status) => NextStep::Delivered,
        Ok(r) if r.status == 410 => NextStep::DisableEndpoint,
        Ok(r) if !retry.retries_status(r.status) => NextStep::Failed,
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

/// The attempt as it is recorded: where it went, what came back, how long it took.
pub(super) fn attempt(
    delivery: &ClaimedDelivery,
    result: &SendResult,
    started: Timestamp,
) -> Attempt {
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
        request_headers: result.request_headers.clone(),
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
        trigger: delivery.trigger,
        error,
        created_at: started,
        policy: None,
        timeout_ms: None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use chrono::TimeDelta;

    use super::*;
    use crate::delivery::policy::RetryPolicy;
    use crate::domain::time::now;

    /// An answer from the endpoint that took 3 ms; the board's tests use it too.
    pub(in crate::delivery::dispatcher) fn answered(
        status: u16,
        retry_after: Option<u64>,
    ) -> SendResult {
        SendResult {
            duration: Duration::from_millis(3),
            request_headers: Default::default(),
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
            request_headers: Default::default(),
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
            next_step(&answered(204, None), 0, &policy().over(&policy()), 0.5, t),
            NextStep::Delivered
        );
        assert_eq!(
            next_step(&answered(410, None), 0, &policy().over(&policy()), 0.5, t),
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
                next_step(&result, 0, &policy().over(&policy()), 0.5, t),
                NextStep::RetryAt(t + TimeDelta::seconds(5))
            );
            assert_eq!(
                next_step(&result, 1, &policy().over(&policy()), 0.5, t),
                NextStep::RetryAt(t + TimeDelta::seconds(300))
            );
            assert_eq!(
                next_step(&result, 2, &policy().over(&policy()), 0.5, t),
                NextStep::Failed
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_for_429_and_503_within_bounds() {
        let t = now();
        let step = |status, after| {
            next_step(
                &answered(status, Some(after)),
                0,
                &policy().over(&policy()),
                0.5,
                t,
            )
        };
        assert_eq!(step(429, 60), NextStep::RetryAt(t + TimeDelta::seconds(60)));
        assert_eq!(step(503, 1), NextStep::RetryAt(t + TimeDelta::seconds(5)));
        assert_eq!(
            step(429, 99_999),
            NextStep::RetryAt(t + TimeDelta::seconds(300))
        );
        assert_eq!(step(500, 60), NextStep::RetryAt(t + TimeDelta::seconds(5)));
    }
}
