//! Endpoint health in the record path, shared by both backends: what is read about an
//! endpoint before its batch of outcomes is judged ([`EndpointHealthRow`]), the outcomes
//! themselves, and the operational events a judgement turns into.
//!
//! Each backend reads the row (PostgreSQL locks the endpoint's row with it, so nodes take
//! turns), calls [`judge_group`], and writes the counters, the disable and the events in the
//! same transaction as the attempts.

use crate::domain::events::{
    AttemptEventData, AttemptRef, DisabledData, EndpointRef, HealthChangedData, HealthState,
    OPERATIONAL_APP_UID, OperationalEvent,
};
use crate::domain::health::{HealthCounters, HealthEvent, Judgement, Outcome, judge};
use crate::domain::time::from_micros;
use crate::domain::{AppId, DeliveryStatus, EndpointId, Timestamp, Uid};
use crate::store::rows::StoredRow;
use crate::store::{AttemptRecord, NextStep, Result, StoreError};

/// The health columns, as decoded by [`counters`] (of `endpoint_health` under alias `h`).
pub const HEALTH_COLUMNS: &str = "h.consecutive_failures, h.failing_since, h.outcomes, \
     h.last_success_at, h.last_failure_at, h.alerted, h.state";

/// What the record path reads about one endpoint before judging its outcomes: `$1` (or
/// `?1`) is its id; no row if it was deleted. PostgreSQL appends its lock.
pub const READ_FOR_RECORD: &str = "SELECT e.id, e.uid, e.app_id, e.disabled, \
     e.auto_disable_after_failures, e.auto_disable_after_secs, a.uid AS app_uid, \
     h.consecutive_failures, h.failing_since, h.outcomes, h.last_success_at, \
     h.last_failure_at, h.alerted, h.state \
     FROM endpoint e JOIN application a ON a.id = e.app_id \
     LEFT JOIN endpoint_health h ON h.endpoint_id = e.id";

/// Writes an endpoint's counters (`$1` the endpoint, `$2 … $8` as [`HEALTH_COLUMNS`],
/// `$9` the time).
pub const UPSERT_HEALTH: &str = "INSERT INTO endpoint_health (endpoint_id, \
     consecutive_failures, failing_since, outcomes, last_success_at, last_failure_at, alerted, \
     state, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (endpoint_id) DO UPDATE SET \
     consecutive_failures = excluded.consecutive_failures, \
     failing_since = excluded.failing_since, outcomes = excluded.outcomes, \
     last_success_at = excluded.last_success_at, last_failure_at = excluded.last_failure_at, \
     alerted = excluded.alerted, state = excluded.state, updated_at = excluded.updated_at";

pub const INSERT_EVENT: &str =
    "INSERT INTO operational_event (event_type, payload, created_at) VALUES ($1, $2, $3)";

/// An endpoint as the record path sees it.
#[derive(Debug)]
pub struct EndpointHealthRow {
    pub endpoint: EndpointRef,
    pub disabled: bool,
    pub auto_disable_after_failures: Option<u32>,
    pub auto_disable_after_secs: Option<u64>,
    pub counters: HealthCounters,
}

impl EndpointHealthRow {
    /// Decodes a row of [`READ_FOR_RECORD`].
    pub fn decode(row: &impl StoredRow) -> Result<Self> {
        Ok(Self {
            endpoint: EndpointRef {
                app_id: AppId::from_stored(row.text("app_id")?),
                app_uid: row.opt_text("app_uid")?.map(Uid::from_stored),
                endpoint_id: EndpointId::from_stored(row.text("id")?),
                endpoint_uid: row.opt_text("uid")?.map(Uid::from_stored),
            },
            disabled: row.flag("disabled")?,
            auto_disable_after_failures: row
                .opt_int("auto_disable_after_failures")?
                .and_then(|n| u32::try_from(n).ok()),
            auto_disable_after_secs: row
                .opt_int("auto_disable_after_secs")?
                .and_then(|n| u64::try_from(n).ok()),
            counters: counters(row)?.unwrap_or_default(),
        })
    }

    /// Events about the internal operational application's endpoints are never written.
    fn reports_events(&self) -> bool {
        self.endpoint
            .app_uid
            .as_ref()
            .is_none_or(|uid| uid.as_str() != OPERATIONAL_APP_UID)
    }
}

/// The counters of a row with [`HEALTH_COLUMNS`]; `None` when the endpoint has none yet.
pub fn counters(row: &impl StoredRow) -> Result<Option<HealthCounters>> {
    let Some(state) = row.opt_text("state")? else {
        return Ok(None);
    };
    let state = HealthState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("endpoint_health.state: {state:?}")))?;
    let count = |column| -> Result<u32> { Ok(u32::try_from(row.int(column)?).unwrap_or(0)) };
    let time = |column| -> Result<Option<Timestamp>> { Ok(row.opt_int(column)?.map(from_micros)) };
    Ok(Some(HealthCounters {
        consecutive_failures: count("consecutive_failures")?,
        failing_since: time("failing_since")?,
        window: row.text("outcomes")?,
        last_success_at: time("last_success_at")?,
        last_failure_at: time("last_failure_at")?,
        alerted: count("alerted")?,
        state,
    }))
}

/// One endpoint's records of a batch, judged: its new counters, whether it is disabled,
/// and the events to write (with the time of each).
pub struct Judged {
    pub judgement: Judgement,
    pub events: Vec<(OperationalEvent, Timestamp)>,
    /// The time of the group's last attempt: when the counters (and a disable) are written.
    pub at: Timestamp,
}

/// Judges one endpoint's records (in the order they were made; all of the same endpoint),
/// under the settings the first of them carries.
pub fn judge_group(row: EndpointHealthRow, group: &[&AttemptRecord]) -> Judged {
    let outcomes: Vec<Outcome> = group.iter().map(|r| outcome(r)).collect();
    let settings = &group[0].health;
    let auto = settings
        .auto_disable
        .overridden(row.auto_disable_after_failures, row.auto_disable_after_secs);
    let at = group[group.len() - 1].attempt.created_at;
    let reports = row.reports_events();
    let judgement = judge(row.counters, row.disabled, &outcomes, settings, auto);
    let events = if reports && !judgement.events.is_empty() {
        judgement
            .events
            .iter()
            .map(|e| event(&row.endpoint, group, &judgement.counters, *e, at))
            .collect()
    } else {
        Vec::new()
    };
    Judged {
        judgement,
        events,
        at,
    }
}

fn outcome(r: &AttemptRecord) -> Outcome {
    Outcome {
        success: r.attempt.status == DeliveryStatus::Success,
        at: r.attempt.created_at,
        gone: r.next == NextStep::DisableEndpoint,
        exhausted: r.next == NextStep::Failed,
    }
}

fn event(
    endpoint: &EndpointRef,
    group: &[&AttemptRecord],
    counters: &HealthCounters,
    event: HealthEvent,
    at: Timestamp,
) -> (OperationalEvent, Timestamp) {
    let attempt = |i: usize| {
        let r = group[i];
        let data = AttemptEventData {
            app_id: endpoint.app_id.clone(),
            app_uid: endpoint.app_uid.clone(),
            msg_id: r.attempt.msg_id.clone(),
            msg_event_id: r.msg_event_id.clone(),
            endpoint_id: endpoint.endpoint_id.clone(),
            last_attempt: AttemptRef {
                id: r.attempt.id.clone(),
                response_status_code: r.attempt.response_status_code,
                timestamp: r.attempt.created_at,
            },
        };
        (data, r.attempt.created_at)
    };
    match event {
        HealthEvent::Failing { attempt: i } => {
            let (data, at) = attempt(i);
            (OperationalEvent::AttemptFailing(data), at)
        }
        HealthEvent::Exhausted { attempt: i } => {
            let (data, at) = attempt(i);
            (OperationalEvent::AttemptExhausted(data), at)
        }
        HealthEvent::Recovered { attempt: i } => {
            let (data, at) = attempt(i);
            (OperationalEvent::AttemptRecovered(data), at)
        }
        HealthEvent::Disabled {
            attempt: i,
            reason,
            fail_since,
        } => (
            OperationalEvent::EndpointDisabled(DisabledData {
                endpoint: endpoint.clone(),
                trigger: reason.trigger(),
                reason,
                fail_since,
            }),
            group[i].attempt.created_at,
        ),
        HealthEvent::StateChanged { previous, state } => (
            OperationalEvent::HealthChanged(HealthChangedData {
                endpoint: endpoint.clone(),
                previous,
                state,
                success_rate: counters.success_rate(),
                consecutive_failures: counters.consecutive_failures,
            }),
            at,
        ),
    }
}
