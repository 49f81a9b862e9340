//! Replays, recovery and dead letters: `…/endpoint/{ep}/bulk-replay`, `…/replay-missing`
//! and `…/recover` start background tasks (see [`crate::replay`]) and answer with the task
//! to follow at `GET /api/v1/background-task/{id}`; `…/dead-letter` lists an application's
//! failed deliveries and `…/dead-letter/requeue` queues them again.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::applications;
use super::background_tasks::{BackgroundTaskStatusSchema, BackgroundTaskTypeSchema};
use super::endpoints;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields;
use super::openapi::strings::{
    ChannelString, DateTimeString, DeliveryStatusCode, EventTypeNameString, PathKeyString,
    StatusCodeClass,
};
use super::pagination::{ListParams, ListResponse, Ordering, limit, list_response};
use crate::domain::{AppId, BackgroundTask, Channel, DeliveryStatus, TaskKind};
use crate::replay::ReplayCursor;
use crate::store::{DeadLetter, FailedFilter, MessageFilter, Order, ReplayFilter};

/// Dead letters requeued by id in one request, in one transaction.
const MAX_REQUEUE_IDS: usize = 1000;
const DEAD_LETTER_PREFIX: &str = "dlv_";

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReplayIn {
    /// Messages created at or after this time…
    #[schema(value_type = DateTimeString)]
    pub since: DateTime<Utc>,
    /// … and before this one (absent or null: no end).
    #[schema(value_type = Option<DateTimeString>)]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkReplayIn {
    /// Messages created at or after this time…
    #[schema(value_type = DateTimeString)]
    pub since: DateTime<Utc>,
    /// … and before this one (absent or null: no end).
    #[schema(value_type = Option<DateTimeString>)]
    pub until: Option<DateTime<Utc>>,
    /// Only messages of these event types (absent, null or empty: all).
    #[schema(value_type = Option<Vec<EventTypeNameString>>)]
    pub event_types: Option<Vec<String>>,
    /// Only messages sent on this channel.
    #[schema(value_type = Option<ChannelString>)]
    pub channel: Option<String>,
    /// Refused unless null: hookd messages have no tags.
    #[schema(value_type = Option<String>)]
    pub tag: Option<serde_json::Value>,
    /// Only deliveries with this status: 0 success, 1 pending, 2 fail (3, sending, is
    /// refused: the attempt is being made; 4, canceled, matches nothing, hookd cancels
    /// none). Absent or null: succeeded and failed ones.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(value_type = Option<DeliveryStatusCode>)]
    pub status: Option<i64>,
    /// Only deliveries whose latest attempt's response status is of this class (0: no
    /// response); deliveries never attempted have none.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(value_type = Option<StatusCodeClass>)]
    pub status_code_class: Option<u16>,
}

/// The contract's `ReplayOut`: the task started.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOut {
    /// `qtask_` and a ULID.
    pub id: String,
    #[schema(value_type = BackgroundTaskStatusSchema)]
    pub status: &'static str,
    #[schema(value_type = BackgroundTaskTypeSchema)]
    pub task: &'static str,
    pub updated_at: DateTime<Utc>,
}

impl From<BackgroundTask> for ReplayOut {
    fn from(t: BackgroundTask) -> Self {
        Self {
            id: t.id.to_string(),
            status: t.status.as_str(),
            task: t.kind.as_str(),
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoverIn {
    /// Failed deliveries of messages created at or after this time…
    #[schema(value_type = DateTimeString)]
    pub since: DateTime<Utc>,
    /// … and before this one (absent or null: no end).
    #[schema(value_type = Option<DateTimeString>)]
    pub until: Option<DateTime<Utc>>,
}

/// The contract's `RecoverOut`: the `endpoint.recover` task started; its `data.messagesSent`
/// counts the deliveries queued again.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverOut {
    /// `qtask_` and a ULID.
    pub id: String,
    #[schema(value_type = BackgroundTaskStatusSchema)]
    pub status: &'static str,
    #[schema(value_type = BackgroundTaskTypeSchema)]
    pub task: &'static str,
    pub updated_at: DateTime<Utc>,
}

async fn start(
    state: &ApiState,
    kind: TaskKind,
    app: &AppId,
    cursor: &ReplayCursor,
) -> Result<BackgroundTask, ApiError> {
    let task = crate::replay::start(&*state.store, kind, app, cursor).await?;
    state.task_created.notify_one();
    Ok(task)
}

impl BulkReplayIn {
    fn filter(self) -> Result<ReplayFilter, ApiError> {
        if self.tag.as_ref().is_some_and(|t| !t.is_null()) {
            return Err(fields::body_error(
                "tag",
                "hookd messages have no tags; leave the field out",
            ));
        }
        let statuses = match self.status {
            None => vec![DeliveryStatus::Success, DeliveryStatus::Fail],
            Some(3) => {
                return Err(fields::body_error(
                    "status",
                    "deliveries being sent (3) cannot be replayed: their attempt is in flight",
                ));
            }
            // Canceled: hookd cancels no delivery, so none has this status.
            Some(4) => Vec::new(),
            Some(code) => vec![
                DeliveryStatus::from_code(code)
                    .ok_or_else(|| fields::body_error("status", "must be 0, 1, 2, 3 or 4"))?,
            ],
        };
        if let Some(class) = self.status_code_class {
            if !matches!(class, 0 | 100 | 200 | 300 | 400 | 500) {
                return Err(fields::body_error(
                    "statusCodeClass",
                    "must be 0, 100, 200, 300, 400 or 500",
                ));
            }
        }
        let channel = self
            .channel
            .map(|c| Channel::parse(&c).map_err(|e| fields::body_error("channel", e)))
            .transpose()?;
        Ok(ReplayFilter {
            since: self.since,
            until: self.until,
            statuses,
            status_code_class: self.status_code_class,
            messages: MessageFilter {
                event_types: fields::event_types("eventTypes", self.event_types)?,
                channel,
                ..MessageFilter::default()
            },
        })
    }
}

/// Sends the endpoint's messages created in `[since, until)` again, as new manual attempts,
/// filtered by delivery status (default: succeeded and failed), the latest attempt's status
/// code class, event types and channel; as an `endpoint.bulk-replay` background task whose
/// `data.messagesSent` counts the deliveries queued.
#[utoipa::path(post, operation_id = "v1.endpoint.bulk-replay", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/bulk-replay",
    tag = "Endpoint", params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = BulkReplayIn, responses((status = 202, body = ReplayOut)))]
pub async fn bulk_replay(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<BulkReplayIn>,
) -> Result<(StatusCode, Json<ReplayOut>), ApiError> {
    let endpoint = endpoints::find(&state, &app_id, &endpoint_id).await?;
    let filter = input.filter()?;
    let cursor = ReplayCursor::bulk_replay(&endpoint.id, &filter);
    let task = start(&state, TaskKind::BulkReplay, &endpoint.app_id, &cursor).await?;
    Ok((StatusCode::ACCEPTED, Json(task.into())))
}

/// Sends the endpoint the messages created in `[since, until)` that it subscribes to (event
/// types, channels) and never had a delivery for, such as those sent before it was created;
/// as an `endpoint.replay` background task whose `data.messagesSent` counts them.
#[utoipa::path(post, operation_id = "v1.endpoint.replay-missing", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/replay-missing",
    tag = "Endpoint", params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = ReplayIn, responses((status = 202, body = ReplayOut)))]
pub async fn replay_missing(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<ReplayIn>,
) -> Result<(StatusCode, Json<ReplayOut>), ApiError> {
    let endpoint = endpoints::find(&state, &app_id, &endpoint_id).await?;
    let cursor = ReplayCursor::replay_missing(&endpoint.id, input.since, input.until);
    let task = start(&state, TaskKind::ReplayMissing, &endpoint.app_id, &cursor).await?;
    Ok((StatusCode::ACCEPTED, Json(task.into())))
}

/// Queues the endpoint's failed deliveries of messages created in `[since, until)` again, as
/// an `endpoint.recover` background task whose `data.messagesSent` counts them. Deliveries
/// that succeeded in the end are not sent again.
#[utoipa::path(post, operation_id = "v1.endpoint.recover", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
    tag = "Endpoint", params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = RecoverIn, responses((status = 202, body = RecoverOut)))]
pub async fn recover(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<RecoverIn>,
) -> Result<(StatusCode, Json<RecoverOut>), ApiError> {
    let endpoint = endpoints::find(&state, &app_id, &endpoint_id).await?;
    let filter = FailedFilter {
        endpoint: Some(endpoint.id),
        event_types: None,
        since: Some(input.since),
        until: input.until,
    };
    let cursor = ReplayCursor::requeue(&filter);
    let task = start(&state, TaskKind::Recover, &endpoint.app_id, &cursor).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RecoverOut {
            id: task.id.to_string(),
            status: task.status.as_str(),
            task: task.kind.as_str(),
            updated_at: task.updated_at,
        }),
    ))
}

/// A delivery that failed for good: its retries ran out, or the endpoint answered 410.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterOut {
    /// `dlv_` and the delivery's number: what `requeue` takes in `ids`.
    pub id: String,
    pub msg_id: String,
    /// The message's eventId, if it has one.
    pub event_id: Option<String>,
    pub event_type: String,
    pub endpoint_id: String,
    /// Attempts made since it was last queued.
    pub attempts: i64,
    /// When the delivery was created: with its message, or by a resend or replay.
    pub created_at: DateTime<Utc>,
    /// When it failed for good.
    pub failed_at: DateTime<Utc>,
}

impl From<DeadLetter> for DeadLetterOut {
    fn from(d: DeadLetter) -> Self {
        Self {
            id: format!("{DEAD_LETTER_PREFIX}{}", d.id),
            msg_id: d.msg_id.to_string(),
            event_id: d.event_id.map(|e| e.as_str().to_owned()),
            event_type: d.event_type.as_str().to_owned(),
            endpoint_id: d.endpoint_id.to_string(),
            attempts: d.attempts,
            created_at: d.created_at,
            failed_at: d.failed_at,
        }
    }
}

/// A dead letter's number from its `dlv_` id.
fn dead_letter_number(id: &str) -> Option<i64> {
    let digits = id.strip_prefix(DEAD_LETTER_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterListParams {
    /// How many items to return (default 50; 0 is read as 1, and values over 250 as 250).
    #[serde(default, deserialize_with = "limit")]
    #[param(minimum = 0)]
    pub limit: Option<u64>,
    /// The `iterator` (or `prevIterator`) of the previous page.
    pub iterator: Option<String>,
    /// Newest first unless `ascending`.
    pub order: Option<Ordering>,
    /// Only deliveries of messages of these event types (repeat the parameter, or separate
    /// names with commas).
    #[serde(default)]
    #[param(value_type = Option<Vec<EventTypeNameString>>)]
    pub event_type: Vec<String>,
    /// Only deliveries to this endpoint (id or uid).
    #[param(value_type = Option<PathKeyString>)]
    pub endpoint_id: Option<String>,
    /// Only deliveries created at or after this time…
    #[param(value_type = Option<DateTimeString>)]
    pub since: Option<String>,
    /// … and before this one.
    #[param(value_type = Option<DateTimeString>)]
    pub until: Option<String>,
}

async fn failed_filter(
    state: &ApiState,
    app: &AppId,
    endpoint: Option<&str>,
    event_types: Option<Vec<String>>,
    field: (&str, &str),
) -> Result<FailedFilter, ApiError> {
    let endpoint = match endpoint.filter(|e| !e.is_empty()) {
        None => None,
        Some(key) => {
            let key = crate::domain::EndpointKey::parse(key)
                .map_err(|e| ApiError::invalid(&[field.0, "endpointId"], e.to_string()))?;
            let found = state
                .store
                .get_endpoint(app, &key)
                .await?
                .ok_or_else(|| ApiError::not_found("endpoint"))?;
            Some(found.id)
        }
    };
    let event_types = match event_types.filter(|t| !t.is_empty()) {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    crate::domain::EventTypeName::parse(name).map_err(|e| {
                        ApiError::invalid(&[field.0, field.1, &i.to_string()], e.to_string())
                    })
                })
                .collect::<Result<_, ApiError>>()?,
        ),
    };
    Ok(FailedFilter {
        endpoint,
        event_types,
        since: None,
        until: None,
    })
}

/// The application's dead letters: deliveries that failed for good, across its endpoints,
/// newest first, filtered by event type, endpoint and creation time. hookd's own route.
#[utoipa::path(get, operation_id = "v1.dead-letter.list", path = "/api/v1/app/{app_id}/dead-letter",
    tag = "Dead Letter", params(("app_id" = PathKeyString, Path), DeadLetterListParams),
    responses((status = 200, body = ListResponse<DeadLetterOut>)))]
pub async fn list_dead_letters(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    QueryParams(params): QueryParams<DeadLetterListParams>,
) -> Result<Json<ListResponse<DeadLetterOut>>, ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let iterator = match params.iterator.as_deref().filter(|i| !i.is_empty()) {
        None => None,
        Some(it) => {
            let (sign, id) = it.strip_prefix('-').map_or(("", it), |rest| ("-", rest));
            let n = dead_letter_number(id).ok_or_else(|| {
                ApiError::invalid(&["query", "iterator"], "must be a dead-letter id (dlv_…)")
            })?;
            Some(format!("{sign}{n}"))
        }
    };
    let page = ListParams::page_of(
        params.limit,
        iterator.as_deref(),
        params.order,
        Order::Descending,
    )?;
    let types = fields::query_list(&params.event_type);
    let mut filter = failed_filter(
        &state,
        &app.id,
        params.endpoint_id.as_deref(),
        Some(types),
        ("query", "eventType"),
    )
    .await?;
    filter.since = fields::query_time("since", params.since.as_deref())?;
    filter.until = fields::query_time("until", params.until.as_deref())?;
    let rows = state
        .store
        .list_dead_letters(&app.id, &filter, &page)
        .await?;
    Ok(Json(list_response(
        rows,
        &page,
        |d| format!("{DEAD_LETTER_PREFIX}{}", d.id),
        DeadLetterOut::from,
    )))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterRequeueIn {
    /// These dead letters (`dlv_…`, at most 1000), queued again in the request. Not with
    /// the filters.
    #[schema(value_type = Option<Vec<String>>)]
    pub ids: Option<Vec<String>>,
    /// Only dead letters to this endpoint (id or uid).
    #[schema(value_type = Option<PathKeyString>)]
    pub endpoint_id: Option<String>,
    /// Only dead letters of messages of these event types.
    #[schema(value_type = Option<Vec<EventTypeNameString>>)]
    pub event_types: Option<Vec<String>>,
    /// Only dead letters created at or after this time…
    #[schema(value_type = Option<DateTimeString>)]
    pub since: Option<DateTime<Utc>>,
    /// … and before this one.
    #[schema(value_type = Option<DateTimeString>)]
    pub until: Option<DateTime<Utc>>,
}

/// What a requeue did: by `ids`, how many were queued again (`task` null); by filters, the
/// task doing it (`requeued` null; see its `data.messagesSent`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterRequeueOut {
    pub requeued: Option<u64>,
    pub task: Option<ReplayOut>,
}

/// Queues dead letters again, as manual attempts with a fresh retry schedule. With `ids`:
/// those (at most 1000), in one transaction, answered 200 with the count. Otherwise every
/// dead letter matching the filters (all of the application's if none is given), however
/// many, as an `endpoint.recover` background task, answered 202. hookd's own route.
#[utoipa::path(post, operation_id = "v1.dead-letter.requeue", path = "/api/v1/app/{app_id}/dead-letter/requeue",
    tag = "Dead Letter", params(("app_id" = PathKeyString, Path)), request_body = DeadLetterRequeueIn,
    responses((status = 200, body = DeadLetterRequeueOut), (status = 202, body = DeadLetterRequeueOut)))]
pub async fn requeue_dead_letters(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    JsonBody(input): JsonBody<DeadLetterRequeueIn>,
) -> Result<(StatusCode, Json<DeadLetterRequeueOut>), ApiError> {
    let app = applications::find(&state, &app_id).await?;
    if let Some(ids) = input.ids {
        let filters = [
            ("endpointId", input.endpoint_id.is_some()),
            ("eventTypes", input.event_types.is_some()),
            ("since", input.since.is_some()),
            ("until", input.until.is_some()),
        ];
        if let Some((field, _)) = filters.iter().find(|(_, given)| *given) {
            return Err(fields::body_error(
                field,
                "give either ids or filters, not both",
            ));
        }
        if ids.len() > MAX_REQUEUE_IDS {
            return Err(fields::body_error(
                "ids",
                format!("may hold at most {MAX_REQUEUE_IDS} ids; use filters for more"),
            ));
        }
        let numbers = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                dead_letter_number(id).ok_or_else(|| {
                    ApiError::invalid(&["body", "ids", &i.to_string()], "must be a dlv_ id")
                })
            })
            .collect::<Result<Vec<i64>, ApiError>>()?;
        let now = state.clock.now();
        let requeued = state.store.requeue_failed(&app.id, &numbers, now).await?;
        if requeued > 0 {
            state.message_enqueued.notify_one();
        }
        return Ok((
            StatusCode::OK,
            Json(DeadLetterRequeueOut {
                requeued: Some(requeued),
                task: None,
            }),
        ));
    }
    let mut filter = failed_filter(
        &state,
        &app.id,
        input.endpoint_id.as_deref(),
        input.event_types,
        ("body", "eventTypes"),
    )
    .await?;
    filter.since = input.since;
    filter.until = input.until;
    let task = start(
        &state,
        TaskKind::Recover,
        &app.id,
        &ReplayCursor::requeue(&filter),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeadLetterRequeueOut {
            requeued: None,
            task: Some(task.into()),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_ids_are_dlv_and_digits() {
        assert_eq!(dead_letter_number("dlv_42"), Some(42));
        assert_eq!(dead_letter_number("dlv_"), None);
        assert_eq!(dead_letter_number("dlv_-1"), None);
        assert_eq!(dead_letter_number("dlv_1a"), None);
        assert_eq!(dead_letter_number("42"), None);
    }
}
