//! Operational events: what hookd tells the operational webhook endpoints about, with the
//! names and payloads of the Svix SDK's API document (`EndpointDisabledEvent`,
//! `MessageAttemptFailingEvent`, …), plus hookd's `endpoint.health.changed`.
//!
//! An event is written to the `operational_event` outbox in the same transaction as the
//! fact it reports, as its [`OperationalEvent::event_type`] and [`OperationalEvent::payload`]
//! (`{"type": …, "data": …}`, the SDK's event objects); the `events` module turns the rows
//! into messages of the internal operational application. Events about the internal
//! application's own endpoints are never written (an operational delivery that fails must not
//! report itself, or a dead operational endpoint would feed itself forever).

use serde::Serialize;

use super::time::Timestamp;
use super::{AppId, AttemptId, EndpointId, EventId, MessageId, Uid};

/// The uid of the internal application that holds the operational webhook endpoints. Events
/// about its own endpoints are never written (see the module docs).
pub const OPERATIONAL_APP_UID: &str = "hookd-operational";

/// An endpoint's health, as shown on endpoint reads and reported by
/// `endpoint.health.changed`. The rules that pick it live beside the health counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum HealthState {
    /// Succeeding at least `degraded_below` of the time, and no failing streak.
    #[default]
    Healthy,
    /// Success rate over the window below `degraded_below`.
    Degraded,
    /// The current streak of consecutive failures reached the first alert threshold.
    Failing,
    /// Disabled by hand, by a 410 Gone, or automatically.
    Disabled,
}

impl HealthState {
    pub const ALL: [HealthState; 4] = [
        HealthState::Healthy,
        HealthState::Degraded,
        HealthState::Failing,
        HealthState::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Failing => "failing",
            HealthState::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<HealthState> {
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }
}

/// The endpoint an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointRef {
    pub app_id: AppId,
    pub app_uid: Option<Uid>,
    pub endpoint_id: EndpointId,
    pub endpoint_uid: Option<Uid>,
}

/// Who disabled an endpoint: the SDK's `EndpointDisabledTrigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DisableTrigger {
    Manual,
    Automatic,
}

/// Why an endpoint was disabled; hookd's `reason` field beside the SDK's `trigger`, since
/// `automatic` covers three different causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DisableReason {
    /// `PATCH`/`PUT` with `disabled: true`.
    Manual,
    /// The endpoint answered 410 Gone.
    Gone,
    /// `auto_disable_after_failures` consecutive failed attempts.
    ConsecutiveFailures,
    /// Every attempt failed for `auto_disable_after_secs`.
    FailingTooLong,
}

impl DisableReason {
    pub fn trigger(self) -> DisableTrigger {
        match self {
            DisableReason::Manual => DisableTrigger::Manual,
            _ => DisableTrigger::Automatic,
        }
    }
}

/// The attempt an attempt event reports: the SDK's `MessageAttemptFailedData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRef {
    pub id: AttemptId,
    /// 0 when no response came (timeout, connection refused, …).
    pub response_status_code: u16,
    pub timestamp: Timestamp,
}

/// The delivery an attempt event is about (`MessageAttempt…EventData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptEventData {
    pub app_id: AppId,
    pub app_uid: Option<Uid>,
    pub msg_id: MessageId,
    pub msg_event_id: Option<EventId>,
    pub endpoint_id: EndpointId,
    pub last_attempt: AttemptRef,
}

/// `endpoint.disabled`'s data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DisabledData {
    #[serde(flatten)]
    pub endpoint: EndpointRef,
    pub trigger: DisableTrigger,
    pub reason: DisableReason,
    /// When the failing streak that led to an automatic disable began.
    pub fail_since: Option<Timestamp>,
}

/// `endpoint.health.changed`'s data (hookd's event).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthChangedData {
    #[serde(flatten)]
    pub endpoint: EndpointRef,
    pub previous: HealthState,
    pub state: HealthState,
    /// Successful attempts over the attempts in the window, 0.0–1.0; `None` before any.
    pub success_rate: Option<f64>,
    pub consecutive_failures: u32,
}

/// `monitor.stale`'s and `monitor.recovered`'s data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitorEventData {
    pub monitor_id: super::MonitorId,
    pub name: String,
    pub app_id: AppId,
    pub app_uid: Option<Uid>,
    /// The event type watched; `None`: any of the application's messages.
    pub event_type: Option<String>,
    /// Seconds of silence the monitor allows, if that is what it expects.
    pub max_silence: Option<i64>,
    /// The cron schedule (UTC) it expects a message before, if that is what it expects.
    pub deadline: Option<String>,
    /// The newest message it saw; `None`: none since it was created.
    pub last_seen_at: Option<Timestamp>,
    /// When the state changed (to stale: when the silence passed `maxSilence`).
    pub since: Timestamp,
}

/// One operational event.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationalEvent {
    EndpointCreated(EndpointRef),
    EndpointUpdated(EndpointRef),
    EndpointDeleted(EndpointRef),
    EndpointEnabled(EndpointRef),
    EndpointDisabled(DisabledData),
    /// A delivery failed for good: its retries are used up (or a 4xx ended it).
    AttemptExhausted(AttemptEventData),
    /// An endpoint's failing streak reached one of `failing_alert_at`; sent once per
    /// threshold per streak.
    AttemptFailing(AttemptEventData),
    /// A success on an endpoint after a `message.attempt.failing` was sent for its streak.
    AttemptRecovered(AttemptEventData),
    HealthChanged(HealthChangedData),
    /// A freshness monitor saw nothing for longer than its `maxSilence` (hookd's event).
    MonitorStale(MonitorEventData),
    /// A stale monitor saw an event again (hookd's event).
    MonitorRecovered(MonitorEventData),
}

impl OperationalEvent {
    pub const TYPES: [&'static str; 11] = [
        "endpoint.created",
        "endpoint.updated",
        "endpoint.deleted",
        "endpoint.enabled",
        "endpoint.disabled",
        "message.attempt.exhausted",
        "message.attempt.failing",
        "message.attempt.recovered",
        "endpoint.health.changed",
        "monitor.stale",
        "monitor.recovered",
    ];

    /// The event type: the message's `eventType` and the payload's `type`.
    pub fn event_type(&self) -> &'static str {
        let i = match self {
            OperationalEvent::EndpointCreated(_) => 0,
            OperationalEvent::EndpointUpdated(_) => 1,
            OperationalEvent::EndpointDeleted(_) => 2,
            OperationalEvent::EndpointEnabled(_) => 3,
            OperationalEvent::EndpointDisabled(_) => 4,
            OperationalEvent::AttemptExhausted(_) => 5,
            OperationalEvent::AttemptFailing(_) => 6,
            OperationalEvent::AttemptRecovered(_) => 7,
            OperationalEvent::HealthChanged(_) => 8,
            OperationalEvent::MonitorStale(_) => 9,
            OperationalEvent::MonitorRecovered(_) => 10,
        };
        Self::TYPES[i]
    }

    /// The payload delivered to operational endpoints: `{"type": …, "data": …}`.
    pub fn payload(&self) -> String {
        #[derive(Serialize)]
        struct Envelope<'a, T: Serialize> {
            #[serde(rename = "type")]
            kind: &'static str,
            data: &'a T,
        }
        fn json<T: Serialize>(kind: &'static str, data: &T) -> String {
            // Plain structs of strings, numbers and timestamps: serialising cannot fail.
            serde_json::to_string(&Envelope { kind, data }).unwrap_or_default()
        }
        let kind = self.event_type();
        match self {
            OperationalEvent::EndpointCreated(e)
            | OperationalEvent::EndpointUpdated(e)
            | OperationalEvent::EndpointDeleted(e)
            | OperationalEvent::EndpointEnabled(e) => json(kind, e),
            OperationalEvent::EndpointDisabled(d) => json(kind, d),
            OperationalEvent::AttemptExhausted(a)
            | OperationalEvent::AttemptFailing(a)
            | OperationalEvent::AttemptRecovered(a) => json(kind, a),
            OperationalEvent::HealthChanged(h) => json(kind, h),
            OperationalEvent::MonitorStale(m) | OperationalEvent::MonitorRecovered(m) => {
                json(kind, m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn endpoint() -> EndpointRef {
        EndpointRef {
            app_id: AppId::generate(),
            app_uid: None,
            endpoint_id: EndpointId::generate(),
            endpoint_uid: Some(Uid::parse("billing").unwrap()),
        }
    }

    #[test]
    fn payloads_have_the_sdk_shapes() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap();
        let endpoint = endpoint();
        let disabled = OperationalEvent::EndpointDisabled(DisabledData {
            endpoint: endpoint.clone(),
            trigger: DisableReason::ConsecutiveFailures.trigger(),
            reason: DisableReason::ConsecutiveFailures,
            fail_since: Some(at),
        });
        assert_eq!(disabled.event_type(), "endpoint.disabled");
        let payload: serde_json::Value = serde_json::from_str(&disabled.payload()).unwrap();
        assert_eq!(
            payload,
            serde_json::json!({"type": "endpoint.disabled", "data": {
                "appId": endpoint.app_id.as_str(), "appUid": null,
                "endpointId": endpoint.endpoint_id.as_str(), "endpointUid": "billing",
                "trigger": "automatic", "reason": "consecutiveFailures",
                "failSince": "2026-12-04T09:00:00Z"
            }})
        );
        let failing = OperationalEvent::AttemptFailing(AttemptEventData {
            app_id: endpoint.app_id.clone(),
            app_uid: None,
            msg_id: MessageId::generate(),
            msg_event_id: None,
            endpoint_id: endpoint.endpoint_id.clone(),
            last_attempt: AttemptRef {
                id: AttemptId::generate(),
                response_status_code: 500,
                timestamp: at,
            },
        });
        let payload: serde_json::Value = serde_json::from_str(&failing.payload()).unwrap();
        assert_eq!(payload["type"], "message.attempt.failing");
        assert_eq!(payload["data"]["lastAttempt"]["responseStatusCode"], 500);
        assert_eq!(payload["data"]["endpointId"], endpoint.endpoint_id.as_str());
    }

    #[test]
    fn health_states_round_trip() {
        for state in HealthState::ALL {
            assert_eq!(HealthState::parse(state.as_str()), Some(state));
        }
    }
}
