//! `/api/v1/background-task`: the tasks API calls start and nodes finish later (see
//! [`crate::tasks`]), and the message routes that start them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::applications;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields;
use super::openapi::strings::PathKeyString;
use super::pagination::ListParams;
use super::pagination::{ListResponse, Ordering, limit, list_response};
use crate::domain::{BackgroundTask, MessageKey, TaskId, TaskKind, TaskStatus};
use crate::store::{Order, TaskFilter};

/// Every task type the contract names. hookd runs `application.purge_content`,
/// `endpoint.bulk-replay`, `endpoint.replay` and `endpoint.recover`; a list filtered by
/// another one is empty.
const TASK_TYPES: [&str; 8] = [
    "endpoint.replay",
    "endpoint.recover",
    "application.stats",
    "message.broadcast",
    "sdk.generate",
    "event-type.aggregate",
    "application.purge_content",
    "endpoint.bulk-replay",
];

/// Message ids (or eventIds) expunged per transaction by `bulk-expunge`.
const EXPUNGE_BATCH: usize = 500;

/// The contract's `BackgroundTaskStatus`.
#[derive(Debug, ToSchema)]
#[schema(as = BackgroundTaskStatus)]
#[expect(
    dead_code,
    reason = "a schema for the OpenAPI document only; never built"
)]
pub enum BackgroundTaskStatusSchema {
    #[schema(rename = "running")]
    Running,
    #[schema(rename = "finished")]
    Finished,
    #[schema(rename = "failed")]
    Failed,
}

/// The contract's `BackgroundTaskType`.
#[derive(Debug, ToSchema)]
#[schema(as = BackgroundTaskType)]
#[expect(
    dead_code,
    reason = "a schema for the OpenAPI document only; never built"
)]
pub enum BackgroundTaskTypeSchema {
    #[schema(rename = "endpoint.replay")]
    EndpointReplay,
    #[schema(rename = "endpoint.recover")]
    EndpointRecover,
    #[schema(rename = "application.stats")]
    ApplicationStats,
    #[schema(rename = "message.broadcast")]
    MessageBroadcast,
    #[schema(rename = "sdk.generate")]
    SdkGenerate,
    #[schema(rename = "event-type.aggregate")]
    EventTypeAggregate,
    #[schema(rename = "application.purge_content")]
    ApplicationPurgeContent,
    #[schema(rename = "endpoint.bulk-replay")]
    EndpointBulkReplay,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundTaskOut {
    /// The task's progress and results, e.g. `{"messagesPurged": 150}`.
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
    /// `qtask_` and a ULID.
    pub id: String,
    #[schema(value_type = BackgroundTaskStatusSchema)]
    pub status: &'static str,
    #[schema(value_type = BackgroundTaskTypeSchema)]
    pub task: &'static str,
    pub updated_at: DateTime<Utc>,
}

impl From<BackgroundTask> for BackgroundTaskOut {
    fn from(t: BackgroundTask) -> Self {
        Self {
            data: t.data,
            id: t.id.to_string(),
            status: t.status.as_str(),
            task: t.kind.as_str(),
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpungeAllContentsOut {
    pub id: String,
    #[schema(value_type = BackgroundTaskStatusSchema)]
    pub status: &'static str,
    #[schema(value_type = BackgroundTaskTypeSchema)]
    pub task: &'static str,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListParams {
    /// How many items to return (default 50; 0 is read as 1, and values over 250 as 250).
    #[serde(default, deserialize_with = "limit")]
    #[param(minimum = 0)]
    pub limit: Option<u64>,
    /// The `iterator` (or `prevIterator`) of the previous page.
    pub iterator: Option<String>,
    /// Newest first unless `ascending`.
    pub order: Option<Ordering>,
    /// Only tasks with this status.
    #[param(value_type = Option<BackgroundTaskStatusSchema>)]
    pub status: Option<String>,
    /// Only tasks of this type.
    #[param(value_type = Option<BackgroundTaskTypeSchema>)]
    pub task: Option<String>,
}

/// The background tasks of the past 90 days (older finished ones are deleted).
#[utoipa::path(get, operation_id = "v1.background-task.list", path = "/api/v1/background-task", tag = "Background Task",
    params(TaskListParams), responses((status = 200, body = ListResponse<BackgroundTaskOut>)))]
pub async fn list(
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<TaskListParams>,
) -> Result<Json<ListResponse<BackgroundTaskOut>>, ApiError> {
    let page = ListParams::page_of(
        params.limit,
        params.iterator.as_deref(),
        params.order,
        Order::Descending,
    )?;
    let status = match params.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(&["query", "status"], "must be running, finished or failed")
        })?),
    };
    let kind = match params.task.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => match TaskKind::parse(t) {
            Some(kind) => Some(kind),
            None if TASK_TYPES.contains(&t) => {
                // A type hookd never runs: there are none.
                return Ok(Json(list_response(
                    Vec::new(),
                    &page,
                    |_: &BackgroundTask| String::new(),
                    BackgroundTaskOut::from,
                )));
            }
            None => {
                return Err(ApiError::invalid(
                    &["query", "task"],
                    format!("must be one of {}", TASK_TYPES.join(", ")),
                ));
            }
        },
    };
    let rows = state
        .store
        .list_tasks(&TaskFilter { status, kind }, &page)
        .await?;
    Ok(Json(list_response(
        rows,
        &page,
        |t| t.id.to_string(),
        BackgroundTaskOut::from,
    )))
}

#[utoipa::path(get, operation_id = "v1.background-task.get", path = "/api/v1/background-task/{task_id}", tag = "Background Task",
    params(("task_id" = String, Path, description = "The task's id (`qtask_…`).")),
    responses((status = 200, body = BackgroundTaskOut)))]
pub async fn get(
    State(state): State<ApiState>,
    Path(task_id): Path<String>,
) -> Result<Json<BackgroundTaskOut>, ApiError> {
    let not_found = || ApiError::not_found("background task");
    let id = TaskId::parse(&task_id).ok_or_else(not_found)?;
    let task = state.store.get_task(&id).await?.ok_or_else(not_found)?;
    Ok(Json(task.into()))
}

/// Removes the payload of every message of the application, as a background task
/// (`application.purge_content`); follow it with `GET /api/v1/background-task/{id}`.
#[utoipa::path(post, operation_id = "v1.message.expunge-all-contents", path = "/api/v1/app/{app_id}/msg/expunge-all-contents",
    tag = "Message", params(("app_id" = PathKeyString, Path)),
    responses((status = 202, body = ExpungeAllContentsOut)))]
pub async fn expunge_all_contents(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
) -> Result<(StatusCode, Json<ExpungeAllContentsOut>), ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let kind = TaskKind::PurgeContent;
    let task = state
        .store
        .insert_task(kind, Some(&app.id), crate::tasks::initial_data(kind), None)
        .await?;
    state.task_created.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(ExpungeAllContentsOut {
            id: task.id.to_string(),
            status: task.status.as_str(),
            task: task.kind.as_str(),
            updated_at: task.updated_at,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkExpungeContentsIn {
    /// Ids or eventIds of the application's messages.
    #[serde(default, deserialize_with = "fields::null_as_default")]
    #[schema(value_type = Vec<PathKeyString>)]
    pub ids: Vec<String>,
}

/// The contract's `BulkExpungeStatus`.
#[derive(Debug, ToSchema)]
#[schema(as = BulkExpungeStatus)]
#[expect(
    dead_code,
    reason = "a schema for the OpenAPI document only; never built"
)]
pub enum BulkExpungeStatusSchema {
    #[schema(rename = "expunged")]
    Expunged,
    #[schema(rename = "not-found")]
    NotFound,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkExpungeContentsOut {
    /// Per id (or eventId) as given: `expunged` or `not-found`.
    #[schema(value_type = BTreeMap<String, BulkExpungeStatusSchema>)]
    pub results: BTreeMap<String, &'static str>,
}

/// Removes the payloads of the given messages (their records and attempts stay). Answered
/// when done, with a result per id, as the contract's response says; the ids are expunged
/// 500 to a transaction.
#[utoipa::path(post, operation_id = "v1.message.bulk-expunge-content", path = "/api/v1/app/{app_id}/msg/bulk-expunge",
    tag = "Message", params(("app_id" = PathKeyString, Path)), request_body = BulkExpungeContentsIn,
    responses((status = 200, body = BulkExpungeContentsOut)))]
pub async fn bulk_expunge(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    JsonBody(input): JsonBody<BulkExpungeContentsIn>,
) -> Result<Json<BulkExpungeContentsOut>, ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let mut keys: Vec<(String, MessageKey)> = Vec::with_capacity(input.ids.len());
    for (i, given) in input.ids.into_iter().enumerate() {
        let key = MessageKey::parse(&given)
            .map_err(|e| ApiError::invalid(&["body", "ids", &i.to_string()], e.to_string()))?;
        keys.push((given, key));
    }
    let mut results = BTreeMap::new();
    for chunk in keys.chunks(EXPUNGE_BATCH) {
        let asked: Vec<MessageKey> = chunk.iter().map(|(_, k)| k.clone()).collect();
        let found = state.store.expunge_messages(&app.id, &asked).await?;
        for (given, key) in chunk {
            let hit = found.iter().any(|(id, event_id)| match key {
                MessageKey::Id(want) => id == want,
                MessageKey::EventId(want) => event_id.as_ref() == Some(want),
            });
            results.insert(given.clone(), if hit { "expunged" } else { "not-found" });
        }
    }
    Ok(Json(BulkExpungeContentsOut { results }))
}
