//! `GET /api/v1/hookd/overview`: what the admin UI's overview page shows, in one read-only
//! request: messages accepted and attempts made per minute over the last hour, the delivery
//! queue's depth and lag, and the endpoints that are failing.
//!
//! The queue figures are those of `/metrics` and readiness (`store::stats`); the activity is
//! counted from the messages and attempts of the hour, so it is the same on every node of a
//! cluster, unlike a node's own counters. It costs a range read of the messages' time index
//! and of the attempts' primary key over the hour: made for a person looking at a page, not
//! for a scraper (use `/metrics` for that).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;

/// Minutes of activity the overview covers.
const MINUTES: i64 = 60;
/// Troubled endpoints listed at most.
const TROUBLED_LIMIT: usize = 20;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewOut {
    /// One entry per minute of the last hour, oldest first, the current minute last
    /// (minutes with nothing have zeros).
    pub per_minute: Vec<MinuteOut>,
    pub queue: QueueOut,
    /// Endpoints enabled and disabled.
    pub endpoints_enabled: u64,
    pub endpoints_disabled: u64,
    /// Up to 20 enabled endpoints whose health is `failing` or `degraded`, failing first.
    pub troubled_endpoints: Vec<TroubledEndpointOut>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MinuteOut {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    /// Messages accepted.
    pub accepted: u64,
    /// Attempts that succeeded (deliveries made).
    pub delivered: u64,
    /// Attempts that failed.
    pub failed: u64,
}

/// Unfinished deliveries (see `hookd_deliveries_*` in the README's metrics).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueOut {
    /// Due now, waiting for an attempt.
    pub due: u64,
    /// Waiting for a retry that is not due yet.
    pub scheduled: u64,
    /// Held while their endpoint is disabled.
    pub parked: u64,
    /// Being attempted.
    pub in_flight: u64,
    /// How long the longest-waiting due delivery has waited, in seconds (0: none is due).
    pub oldest_due_age_seconds: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TroubledEndpointOut {
    pub app_id: String,
    pub app_name: String,
    pub endpoint_id: String,
    pub url: String,
    /// `failing` or `degraded`.
    pub state: String,
    pub consecutive_failures: u64,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// hookd: the admin UI's overview (activity of the last hour, the queue, failing endpoints).
#[utoipa::path(get, operation_id = "v1.hookd.overview", path = "/api/v1/hookd/overview", tag = "hookd",
    responses((status = 200, body = OverviewOut)))]
pub async fn get(State(state): State<ApiState>) -> Result<Json<OverviewOut>, ApiError> {
    let now = state.clock.now();
    let first = minute_of(now) - TimeDelta::minutes(MINUTES - 1);
    let activity = state.store.activity(first).await?;
    let queue = state.store.queue_stats(now).await?;
    let endpoints = state.store.endpoint_counts().await?;
    let troubled = state.store.troubled_endpoints(TROUBLED_LIMIT).await?;
    let per_minute = (0..MINUTES)
        .map(|i| {
            let minute = first + TimeDelta::minutes(i);
            let found = activity
                .iter()
                .find(|a| a.minute == minute.timestamp().div_euclid(60));
            MinuteOut {
                minute,
                accepted: found.map_or(0, |a| a.accepted),
                delivered: found.map_or(0, |a| a.succeeded),
                failed: found.map_or(0, |a| a.failed),
            }
        })
        .collect();
    let age = queue.oldest_due.map_or(0.0, |due| {
        (now - due).num_milliseconds().max(0) as f64 / 1000.0
    });
    Ok(Json(OverviewOut {
        per_minute,
        queue: QueueOut {
            due: queue.due,
            scheduled: queue.scheduled,
            parked: queue.parked,
            in_flight: queue.in_flight,
            oldest_due_age_seconds: age,
        },
        endpoints_enabled: endpoints.enabled,
        endpoints_disabled: endpoints.disabled,
        troubled_endpoints: troubled
            .into_iter()
            .map(|t| TroubledEndpointOut {
                app_id: t.app_id.to_string(),
                app_name: t.app_name,
                endpoint_id: t.endpoint_id.to_string(),
                url: t.url,
                state: t.state,
                consecutive_failures: t.consecutive_failures,
                failing_since: t.failing_since,
                last_failure_at: t.last_failure_at,
            })
            .collect(),
    }))
}

/// The start of `t`'s minute.
fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(60) * 60, 0).unwrap_or(t)
}
