//! `/api/v1/monitor`: freshness monitors (hookd's routes; see `crate::monitors`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::applications;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields::{self, body_error};
use super::openapi::strings::{EventTypeNameString, PathKeyString};
use super::pagination::{ListParams, ListResponse, list_response};
use crate::domain::{Deadline, EventTypeName, Expectation, Monitor, MonitorId};
use crate::store::{NewMonitor, Order};

/// The longest silence a monitor may allow: a year.
const MAX_SILENCE_SECS: i64 = 366 * 24 * 3600;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitorIn {
    /// What the monitor watches, in words ("nightly scrape").
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The application (id or uid) whose messages are watched; it cannot change. Give this
    /// or `source`.
    #[schema(value_type = Option<PathKeyString>)]
    pub app: Option<String>,
    /// The ingest source (id or uid) whose received requests (or cron runs) are watched;
    /// it cannot change. Give this or `app`.
    #[schema(value_type = Option<PathKeyString>)]
    pub source: Option<String>,
    /// Only messages of this event type; absent: any of the application's messages. It
    /// cannot change.
    #[schema(value_type = Option<EventTypeNameString>)]
    pub event_type: Option<String>,
    /// Seconds without a message after which the monitor is stale (90000: 25 hours), 1 to
    /// 31622400 (a year). Give this or `deadline`.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 1, maximum = 31622400)]
    pub max_silence: Option<i64>,
    /// A cron schedule, in UTC, of times by which a message must have come since the time
    /// before (`"0 3 * * *"`: by 03:00 every day): five fields, or six with seconds first.
    /// Give this or `maxSilence`.
    pub deadline: Option<String>,
}

/// A monitor's settings that can change (its application and event type cannot).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitorUpdate {
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// As on creation: give this or `deadline`.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 1, maximum = 31622400)]
    pub max_silence: Option<i64>,
    /// As on creation: give this or `maxSilence`.
    pub deadline: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorOut {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The application's id; null when the monitor watches an ingest source.
    pub app: Option<String>,
    /// The ingest source's id, when the monitor watches one.
    pub source: Option<String>,
    pub event_type: Option<String>,
    /// Seconds, when the monitor expects a message at most this long after the one before.
    pub max_silence: Option<i64>,
    /// The cron schedule (UTC), when the monitor expects a message before each of its times.
    pub deadline: Option<String>,
    /// `ok` or `stale`.
    pub state: String,
    /// When the newest message watched was created (as the monitor last looked).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// When the state last changed (creation, at first).
    pub state_since: DateTime<Utc>,
    /// When the monitor goes stale if no message comes.
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Monitor> for MonitorOut {
    fn from(m: Monitor) -> Self {
        Self {
            due_at: m.due_at(),
            id: m.id.to_string(),
            name: m.name,
            description: m.description,
            app: m.source_id.is_none().then(|| m.app_id.to_string()),
            source: m.source_id.map(|s| s.to_string()),
            event_type: m.event_type.map(|e| e.as_str().to_owned()),
            max_silence: match &m.expect {
                Expectation::Silence(silence) => Some(silence.num_seconds()),
                Expectation::Deadline(_) => None,
            },
            deadline: match &m.expect {
                Expectation::Silence(_) => None,
                Expectation::Deadline(deadline) => Some(deadline.as_str().to_owned()),
            },
            state: m.state.as_str().to_owned(),
            last_seen_at: m.last_seen_at,
            state_since: m.state_since,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The checked fields of a monitor.
struct Checked {
    name: String,
    description: String,
    event_type: Option<EventTypeName>,
    expect: Expectation,
}

fn check(input: &MonitorIn) -> Result<Checked, ApiError> {
    if input.name.is_empty() || input.name.chars().count() > 256 {
        return Err(body_error("name", "must be 1 to 256 characters"));
    }
    let expect = match (input.max_silence, &input.deadline) {
        (Some(secs), None) => {
            if !(1..=MAX_SILENCE_SECS).contains(&secs) {
                return Err(body_error(
                    "maxSilence",
                    "must be 1 to 31622400 seconds (a year); 90000 is 25 hours",
                ));
            }
            Expectation::Silence(TimeDelta::seconds(secs))
        }
        (None, Some(text)) => {
            Expectation::Deadline(Deadline::parse(text).map_err(|e| body_error("deadline", e))?)
        }
        (Some(_), Some(_)) => {
            return Err(body_error(
                "deadline",
                "give maxSilence or deadline, not both",
            ));
        }
        (None, None) => {
            return Err(body_error(
                "maxSilence",
                "give maxSilence (seconds) or deadline (a cron schedule)",
            ));
        }
    };
    let event_type = input
        .event_type
        .as_deref()
        .map(EventTypeName::parse)
        .transpose()
        .map_err(|e| body_error("eventType", e))?;
    Ok(Checked {
        name: input.name.clone(),
        description: input.description.clone().unwrap_or_default(),
        event_type,
        expect,
    })
}

#[utoipa::path(post, operation_id = "hookd.monitor.create", path = "/api/v1/monitor", tag = "Monitor",
    request_body = MonitorIn,
    responses((status = 201, body = MonitorOut)))]
pub async fn create(
    State(state): State<ApiState>,
    JsonBody(input): JsonBody<MonitorIn>,
) -> Result<(StatusCode, Json<MonitorOut>), ApiError> {
    let checked = check(&input)?;
    let (app_id, source_id) = match (&input.app, &input.source) {
        (Some(app), None) => (applications::find(&state, app).await?.id, None),
        (None, Some(source)) => {
            let source = super::ingest::find_source(&state, source).await?;
            (source.app_id, Some(source.id))
        }
        (Some(_), Some(_)) => return Err(body_error("source", "give app or source, not both")),
        (None, None) => {
            return Err(body_error(
                "app",
                "give app (an application's id or uid) or source (an ingest source's)",
            ));
        }
    };
    let monitor = state
        .store
        .insert_monitor(NewMonitor {
            name: checked.name,
            description: checked.description,
            app_id,
            source_id,
            event_type: checked.event_type,
            expect: checked.expect,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(monitor.into())))
}

#[utoipa::path(get, operation_id = "hookd.monitor.list", path = "/api/v1/monitor", tag = "Monitor",
    params(ListParams),
    responses((status = 200, body = ListResponse<MonitorOut>)))]
pub async fn list(
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListResponse<MonitorOut>>, ApiError> {
    let page = params.page(Order::Ascending)?;
    let rows = state.store.list_monitors(&page).await?;
    Ok(Json(list_response(
        rows,
        &page,
        |m| m.id.to_string(),
        MonitorOut::from,
    )))
}

async fn find(state: &ApiState, id: &str) -> Result<Monitor, ApiError> {
    let id = MonitorId::parse(id).ok_or_else(|| ApiError::not_found("monitor"))?;
    state
        .store
        .get_monitor(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("monitor"))
}

#[utoipa::path(get, operation_id = "hookd.monitor.get", path = "/api/v1/monitor/{monitor_id}", tag = "Monitor",
    params(("monitor_id" = String, Path, description = "The monitor's id (`mon_…`)")),
    responses((status = 200, body = MonitorOut)))]
pub async fn get(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<MonitorOut>, ApiError> {
    Ok(Json(find(&state, &id).await?.into()))
}

/// Changes the name, description and `maxSilence` or `deadline` (the state follows at the
/// next check). The application and event type cannot change: a body naming them is a 422
/// (create another monitor).
#[utoipa::path(put, operation_id = "hookd.monitor.update", path = "/api/v1/monitor/{monitor_id}", tag = "Monitor",
    params(("monitor_id" = String, Path, description = "The monitor's id (`mon_…`)")),
    request_body = MonitorUpdate,
    responses((status = 200, body = MonitorOut)))]
pub async fn update(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<MonitorUpdate>,
) -> Result<Json<MonitorOut>, ApiError> {
    let mut monitor = find(&state, &id).await?;
    let checked = check(&MonitorIn {
        name: input.name,
        description: input.description,
        app: Some(monitor.app_id.to_string()),
        source: None,
        event_type: monitor.event_type.as_ref().map(|e| e.as_str().to_owned()),
        max_silence: input.max_silence,
        deadline: input.deadline,
    })?;
    monitor.name = checked.name;
    monitor.description = checked.description;
    monitor.expect = checked.expect;
    let monitor = state.store.update_monitor(monitor).await?;
    Ok(Json(monitor.into()))
}

#[utoipa::path(delete, operation_id = "hookd.monitor.delete", path = "/api/v1/monitor/{monitor_id}", tag = "Monitor",
    params(("monitor_id" = String, Path, description = "The monitor's id (`mon_…`)")),
    responses((status = 204)))]
pub async fn delete(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let monitor = find(&state, &id).await?;
    if !state.store.delete_monitor(&monitor.id).await? {
        return Err(ApiError::not_found("monitor"));
    }
    Ok(StatusCode::NO_CONTENT)
}
