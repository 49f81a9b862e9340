//! The attempt log and delivery control: attempts by message and by endpoint, delivery
//! status per message and per endpoint, resend, stats and send-example (recover is in
//! `replays`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::applications;
use super::endpoints::{self, EndpointHealthOut, EndpointOut};
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields;
use super::messages::{self, MessageOut};
use super::openapi::strings::PathKeyString;
use super::openapi::strings::{
    ChannelString, DateTimeString, DeliveryStatusCode, EventTypeNameString, StatusCodeClass,
};
use super::pagination::{ListParams, ListResponse, Ordering, limit, list_response};
use crate::domain::time::now;
use crate::domain::{Attempt, AttemptId, DeliveryStatus, EventTypeName, Payload, ResourceKey};
use crate::store::{AttemptFilter, DeliveryState, NewMessage, Order};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttemptOut {
    pub id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub url: String,
    /// The start of the response body.
    pub response: String,
    /// 0 when there was no response.
    pub response_status_code: u16,
    pub response_duration_ms: u64,
    /// 0 success, 2 fail.
    pub status: i64,
    pub status_text: String,
    /// 0 scheduled, 1 manual.
    pub trigger_type: i64,
    pub timestamp: DateTime<Utc>,
    /// hookd: the response headers.
    pub response_headers: BTreeMap<String, String>,
    /// hookd: for a failed attempt, the headers hookd set on the request (the signature and
    /// id headers, content type, the endpoint's custom headers with credentials as
    /// `[redacted]`); the HTTP client adds `Host`, `Content-Length` and `User-Agent`. Empty
    /// for an attempt that succeeded (kept only where someone looks into why), when no
    /// request was made, and for attempts recorded before hookd kept them.
    pub request_headers: BTreeMap<String, String>,
    /// hookd: why the attempt failed: timeout, connect, dns, tls, ssrf_refused, http_status.
    pub error_class: Option<String>,
    /// hookd: the failure in words.
    pub error: Option<String>,
    /// hookd: where the retry policy the attempt ran under came from: `endpoint`,
    /// `eventType`, `priority:high` (`:normal`, `:low`) or `default`; null for attempts
    /// recorded before hookd kept it.
    pub policy: Option<String>,
    /// hookd: the attempt's timeout, in milliseconds (null as for `policy`).
    pub timeout_ms: Option<u64>,
}

impl From<Attempt> for MessageAttemptOut {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id.to_string(),
            msg_id: a.msg_id.to_string(),
            endpoint_id: a.endpoint_id.to_string(),
            url: a.url,
            response: a.response_body,
            response_status_code: a.response_status_code,
            response_duration_ms: a.duration_ms,
            status: a.status.code(),
            status_text: a.status.text().to_owned(),
            trigger_type: a.trigger.code(),
            timestamp: a.created_at,
            response_headers: a.response_headers,
            request_headers: a.request_headers,
            error_class: a.error.as_ref().map(|e| e.class.to_string()),
            error: a.error.map(|e| e.message),
            policy: a.policy.map(|p| p.as_str().to_owned()),
            timeout_ms: a.timeout_ms,
        }
    }
}

/// A message as delivered to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointMessageOut {
    #[serde(flatten)]
    pub message: MessageOut,
    pub status: i64,
    pub status_text: String,
    pub next_attempt: Option<DateTime<Utc>>,
}

/// An endpoint a message is delivered to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageEndpointOut {
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    pub status: i64,
    pub status_text: String,
    pub next_attempt: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointStats {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
    /// Always 0: hookd has no cancelled state.
    pub canceled: u64,
    /// hookd: the endpoint's health now (whatever the range).
    pub health: EndpointHealthOut,
}

/// The Svix SDK's `EndpointAttemptStats` (its `get_attempt_stats`), with hookd's `health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointAttemptStats {
    pub success: u64,
    pub fail: u64,
    /// Always 0: hookd cancels no attempt.
    pub canceled: u64,
    /// hookd: the endpoint's health now (whatever the range).
    pub health: EndpointHealthOut,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventExampleIn {
    #[schema(value_type = EventTypeNameString)]
    pub event_type: String,
    /// Which of the schema's `examples` to send (default 0).
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 0, maximum = 4294967295_u64)]
    pub example_index: Option<usize>,
    /// The payload to send instead of a schema example.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<RawValue>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmptyResponse {}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptListParams {
    #[serde(default, deserialize_with = "limit")]
    #[param(minimum = 0)]
    pub limit: Option<u64>,
    pub iterator: Option<String>,
    /// Newest first unless `ascending`.
    pub order: Option<Ordering>,
    /// 0 success, 2 fail.
    #[param(value_type = Option<DeliveryStatusCode>)]
    pub status: Option<i64>,
    /// 0 (no response), 100, 200, 300, 400 or 500.
    #[param(value_type = Option<StatusCodeClass>)]
    pub status_code_class: Option<u16>,
    /// Only attempts to this endpoint (for attempts by message).
    #[param(value_type = Option<PathKeyString>)]
    pub endpoint_id: Option<String>,
    #[param(value_type = Option<DateTimeString>)]
    pub before: Option<String>,
    #[param(value_type = Option<DateTimeString>)]
    pub after: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptedMessageParams {
    #[serde(default, deserialize_with = "limit")]
    #[param(minimum = 0)]
    pub limit: Option<u64>,
    pub iterator: Option<String>,
    /// 0 success, 1 pending, 2 fail, 3 sending.
    #[param(value_type = Option<DeliveryStatusCode>)]
    pub status: Option<i64>,
    #[param(value_type = Option<ChannelString>)]
    pub channel: Option<String>,
    #[param(value_type = Option<DateTimeString>)]
    pub before: Option<String>,
    #[param(value_type = Option<DateTimeString>)]
    pub after: Option<String>,
    /// Include payloads (default true).
    pub with_content: Option<bool>,
    #[serde(default)]
    #[param(value_type = Option<Vec<EventTypeNameString>>)]
    pub event_types: Vec<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    #[param(value_type = Option<DateTimeString>)]
    pub since: Option<String>,
    #[param(value_type = Option<DateTimeString>)]
    pub until: Option<String>,
}

fn status_param(value: Option<i64>) -> Result<Option<DeliveryStatus>, ApiError> {
    value
        .map(|code| {
            DeliveryStatus::from_code(code).ok_or_else(|| {
                ApiError::invalid(
                    &["query", "status"],
                    "must be 0 (success), 1 (pending), 2 (fail) or 3 (sending)",
                )
            })
        })
        .transpose()
}

fn state_fields(state: &DeliveryState) -> (i64, String, Option<DateTime<Utc>>) {
    (
        state.status.code(),
        state.status.text().to_owned(),
        state.next_attempt,
    )
}

impl AttemptListParams {
    fn filter(&self) -> Result<AttemptFilter, ApiError> {
        if let Some(class) = self.status_code_class {
            if !matches!(class, 0 | 100 | 200 | 300 | 400 | 500) {
                return Err(ApiError::invalid(
                    &["query", "status_code_class"],
                    "must be 0, 100, 200, 300, 400 or 500",
                ));
            }
        }
        Ok(AttemptFilter {
            status: status_param(self.status)?,
            status_code_class: self.status_code_class,
            before: fields::query_time("before", self.before.as_deref())?,
            after: fields::query_time("after", self.after.as_deref())?,
            ..AttemptFilter::default()
        })
    }
}

async fn attempt_page(
    state: &ApiState,
    app: &crate::domain::AppId,
    params: &AttemptListParams,
    filter: AttemptFilter,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let page = ListParams::page_of(
        params.limit,
        params.iterator.as_deref(),
        params.order,
        Order::Descending,
    )?;
    let rows = state.store.list_attempts(app, &filter, &page).await?;
    Ok(Json(list_response(
        rows,
        &page,
        |a| a.id.to_string(),
        MessageAttemptOut::from,
    )))
}

#[utoipa::path(get, operation_id = "v1.message-attempt.list-by-msg", path = "/api/v1/app/{app_id}/attempt/msg/{msg_id}", tag = "Message Attempt",
    params(("app_id" = PathKeyString, Path), ("msg_id" = PathKeyString, Path), AttemptListParams),
    responses((status = 200, body = ListResponse<MessageAttemptOut>)))]
pub async fn list_by_msg(
    State(state): State<ApiState>,
    Path((app_id, msg_id)): Path<(String, String)>,
    QueryParams(params): QueryParams<AttemptListParams>,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let message = messages::find(&state, &app_id, &msg_id).await?;
    let mut filter = params.filter()?;
    filter.msg_id = Some(message.id);
    if let Some(endpoint) = params.endpoint_id.as_deref().filter(|e| !e.is_empty()) {
        let key = fields::endpoint_key(endpoint)?;
        let endpoint = state
            .store
            .get_endpoint(&message.app_id, &key)
            .await?
            .ok_or_else(|| ApiError::not_found("endpoint"))?;
        filter.endpoint_id = Some(endpoint.id);
    }
    attempt_page(&state, &message.app_id, &params, filter).await
}

#[utoipa::path(get, operation_id = "v1.message-attempt.list-by-endpoint", path = "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}",
    tag = "Message Attempt",
    params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path), AttemptListParams),
    responses((status = 200, body = ListResponse<MessageAttemptOut>)))]
pub async fn list_by_endpoint(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    QueryParams(params): QueryParams<AttemptListParams>,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let endpoint = endpoints::find(&state, &app_id, &endpoint_id).await?;
    let mut filter = params.filter()?;
    filter.endpoint_id = Some(endpoint.id);
    attempt_page(&state, &endpoint.app_id, &params, filter).await
}

async fn find_attempt(
    state: &ApiState,
    app_id: &str,
    msg_id: &str,
    attempt_id: &str,
) -> Result<Attempt, ApiError> {
    let message = messages::find(state, app_id, msg_id).await?;
    let not_found = || ApiError::not_found("attempt");
    let id = AttemptId::parse(attempt_id).ok_or_else(not_found)?;
    state
        .store
        .get_attempt(&message.app_id, &id)
        .await?
        .filter(|a| a.msg_id == message.id)
        .ok_or_else(not_found)
}

#[utoipa::path(get, operation_id = "v1.message-attempt.get", path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}",
    tag = "Message Attempt",
    params(("app_id" = PathKeyString, Path), ("msg_id" = PathKeyString, Path), ("attempt_id" = PathKeyString, Path)),
    responses((status = 200, body = MessageAttemptOut)))]
pub async fn get(
    State(state): State<ApiState>,
    Path((app_id, msg_id, attempt_id)): Path<(String, String, String)>,
) -> Result<Json<MessageAttemptOut>, ApiError> {
    Ok(Json(
        find_attempt(&state, &app_id, &msg_id, &attempt_id)
            .await?
            .into(),
    ))
}

/// Deletes the stored response body and headers of an attempt.
#[utoipa::path(delete, operation_id = "v1.message-attempt.expunge-content", path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content",
    tag = "Message Attempt",
    params(("app_id" = PathKeyString, Path), ("msg_id" = PathKeyString, Path), ("attempt_id" = PathKeyString, Path)),
    responses((status = 204)))]
pub async fn expunge_content(
    State(state): State<ApiState>,
    Path((app_id, msg_id, attempt_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let attempt = find_attempt(&state, &app_id, &msg_id, &attempt_id).await?;
    state
        .store
        .expunge_attempt_content(&attempt.app_id, &attempt.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The messages delivered to an endpoint, newest first, each with its delivery status.
#[utoipa::path(get, operation_id = "v1.message-attempt.list-attempted-messages", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg",
    tag = "Message Attempt",
    params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path), AttemptedMessageParams),
    responses((status = 200, body = ListResponse<EndpointMessageOut>)))]
pub async fn list_attempted_messages(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    QueryParams(params): QueryParams<AttemptedMessageParams>,
) -> Result<Json<ListResponse<EndpointMessageOut>>, ApiError> {
    let endpoint = endpoints::find(&state, &app_id, &endpoint_id).await?;
    let page = ListParams::page_of(
        params.limit,
        params.iterator.as_deref(),
        None,
        Order::Descending,
    )?;
    let filter = messages::message_filter(
        &params.event_types,
        params.channel.as_deref(),
        params.before.as_deref(),
        params.after.as_deref(),
    )?;
    let status = status_param(params.status)?;
    let rows = state
        .store
        .list_endpoint_messages(&endpoint.id, status, &filter, &page)
        .await?;
    let with_content = params.with_content.unwrap_or(true);
    Ok(Json(list_response(
        rows,
        &page,
        |(m, _)| m.id.to_string(),
        |(m, s)| {
            let (status, status_text, next_attempt) = state_fields(&s);
            EndpointMessageOut {
                message: MessageOut::new(m, with_content),
                status,
                status_text,
                next_attempt,
            }
        },
    )))
}

/// The endpoints a message is delivered to, each with its delivery status.
#[utoipa::path(get, operation_id = "v1.message-attempt.list-attempted-destinations", path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint", tag = "Message Attempt",
    params(("app_id" = PathKeyString, Path), ("msg_id" = PathKeyString, Path), ListParams),
    responses((status = 200, body = ListResponse<MessageEndpointOut>)))]
pub async fn list_attempted_destinations(
    State(state): State<ApiState>,
    Path((app_id, msg_id)): Path<(String, String)>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListResponse<MessageEndpointOut>>, ApiError> {
    let message = messages::find(&state, &app_id, &msg_id).await?;
    let page = params.page(Order::Ascending)?;
    let rows = state
        .store
        .list_message_endpoints(&message.id, &page)
        .await?;
    let health =
        endpoints::health_of(&state, &rows.iter().map(|(e, _)| e).collect::<Vec<_>>()).await?;
    Ok(Json(list_response(
        rows,
        &page,
        |(e, _)| e.id.to_string(),
        |(e, s)| {
            let (status, status_text, next_attempt) = state_fields(&s);
            let counters = health.get(&e.id);
            MessageEndpointOut {
                endpoint: EndpointOut::new(e, counters),
                status,
                status_text,
                next_attempt,
            }
        },
    )))
}

/// Delivers the message to the endpoint again, now, with a fresh retry schedule.
#[utoipa::path(post, operation_id = "v1.message-attempt.resend", path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    tag = "Message Attempt",
    params(("app_id" = PathKeyString, Path), ("msg_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    responses((status = 202, body = EmptyResponse)))]
pub async fn resend(
    State(state): State<ApiState>,
    Path((app_id, msg_id, endpoint_id)): Path<(String, String, String)>,
) -> Result<(StatusCode, Json<EmptyResponse>), ApiError> {
    let message = messages::find(&state, &app_id, &msg_id).await?;
    let key = fields::endpoint_key(&endpoint_id)?;
    let endpoint = state
        .store
        .get_endpoint(&message.app_id, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    state
        .store
        .resend(&message.app_id, &message.id, &endpoint.id, now())
        .await?;
    state.message_enqueued.notify_one();
    Ok((StatusCode::ACCEPTED, Json(EmptyResponse {})))
}

/// The endpoint's deliveries counted by status, for messages created in the range.
#[utoipa::path(get, operation_id = "v1.endpoint.get-stats", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats", tag = "Endpoint",
    params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path), StatsParams),
    responses((status = 200, body = EndpointStats)))]
pub async fn stats(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    QueryParams(params): QueryParams<StatsParams>,
) -> Result<Json<EndpointStats>, ApiError> {
    let endpoint = endpoints::find(&state, &app_id, &endpoint_id).await?;
    let since = fields::query_time("since", params.since.as_deref())?;
    let until = fields::query_time("until", params.until.as_deref())?;
    let c = state
        .store
        .endpoint_stats(&endpoint.id, since, until)
        .await?;
    let health = endpoints::health_of(&state, &[&endpoint]).await?;
    Ok(Json(EndpointStats {
        success: c.success,
        pending: c.pending,
        sending: c.sending,
        fail: c.fail,
        canceled: 0,
        health: EndpointHealthOut::new(endpoint.disabled, health.get(&endpoint.id)),
    }))
}

/// The endpoint's attempts counted by outcome, over whole hours: `since` is rounded down to
/// its hour and `until` up to the end of its hour (the Svix SDK's `get_attempt_stats`).
/// Without `since`, from the first attempt; without `until`, up to now.
#[utoipa::path(get, operation_id = "v1.endpoint.get-attempt-stats", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/attempt-stats", tag = "Endpoint",
    params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path), StatsParams),
    responses((status = 200, body = EndpointAttemptStats)))]
pub async fn attempt_stats(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    QueryParams(params): QueryParams<StatsParams>,
) -> Result<Json<EndpointAttemptStats>, ApiError> {
    let endpoint = endpoints::find(&state, &app_id, &endpoint_id).await?;
    let since = fields::query_time("since", params.since.as_deref())?.map(hour_floor);
    let until = fields::query_time("until", params.until.as_deref())?.map(hour_ceil);
    let c = state
        .store
        .endpoint_attempt_counts(&endpoint.id, since, until)
        .await?;
    let health = endpoints::health_of(&state, &[&endpoint]).await?;
    Ok(Json(EndpointAttemptStats {
        success: c.success,
        fail: c.fail,
        canceled: 0,
        health: EndpointHealthOut::new(endpoint.disabled, health.get(&endpoint.id)),
    }))
}

fn hour_floor(t: crate::domain::Timestamp) -> crate::domain::Timestamp {
    let secs = t.timestamp().div_euclid(3600) * 3600;
    chrono::DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

/// The end of `t`'s hour; an exact hour is its own end.
fn hour_ceil(t: crate::domain::Timestamp) -> crate::domain::Timestamp {
    let floor = hour_floor(t);
    if floor == t {
        t
    } else {
        floor + chrono::TimeDelta::hours(1)
    }
}

/// Sends an example message of an event type to this endpoint only: the given `payload`,
/// else the event type's schema example, else `{"eventType": …, "example": true}`.
#[utoipa::path(post, operation_id = "v1.endpoint.send-example", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example",
    tag = "Endpoint", params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = EventExampleIn, responses((status = 202, body = MessageOut)))]
pub async fn send_example(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<EventExampleIn>,
) -> Result<(StatusCode, Json<MessageOut>), ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let endpoint = endpoints::find(&state, &app_id, &endpoint_id).await?;
    let event_type =
        EventTypeName::parse(&input.event_type).map_err(|e| fields::body_error("eventType", e))?;
    let payload = match input.payload {
        Some(raw) => Payload::parse(&raw, state.settings.max_payload_depth)
            .map_err(|e| fields::body_error("payload", e))?,
        None => example_payload(&state, &event_type, input.example_index.unwrap_or(0)).await?,
    };
    let message = messages::accept(
        &state,
        NewMessage {
            app: ResourceKey::Id(app.id),
            create_app: None,
            event_type,
            event_id: None,
            channels: None,
            payload,
            payload_retention: state.settings.payload_retention,
            deliver_at: None,
            priority: None,
            only_endpoint: Some(endpoint.id),
            direct: None,
            key: None,
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(MessageOut::new(message, true))))
}

async fn example_payload(
    state: &ApiState,
    event_type: &EventTypeName,
    index: usize,
) -> Result<Payload, ApiError> {
    let example = state
        .store
        .get_event_type(event_type)
        .await?
        .and_then(|et| et.schemas)
        .and_then(|schemas| {
            // The newest schema version's `examples`, if it has any.
            let (_, newest) = schemas
                .into_iter()
                .max_by(|(a, _), (b, _)| version_order(a, b))?;
            newest.get("examples")?.get(index).cloned()
        })
        .filter(|e| e.is_object());
    let value = match example {
        Some(v) => v,
        None if index == 0 => {
            serde_json::json!({"eventType": event_type.as_str(), "example": true})
        }
        // Like an id that names nothing: the request is well formed, the example is not there.
        None => {
            return Err(ApiError::NotFound(format!(
                "the event type has no example {index} (exampleIndex)"
            )));
        }
    };
    let raw = serde_json::value::to_raw_value(&value)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("example payload: {e}")))?;
    Payload::parse(&raw, state.settings.max_payload_depth)
        .map_err(|e| fields::body_error("payload", e))
}

/// Orders schema versions numerically when they are numbers ("10" after "9").
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_versions_sort_numerically() {
        assert_eq!(version_order("10", "9"), std::cmp::Ordering::Greater);
        assert_eq!(version_order("a", "b"), std::cmp::Ordering::Less);
    }

    #[test]
    fn attempt_stats_ranges_are_whole_hours() {
        use chrono::{TimeZone, Utc};
        let t = |h, m, s| Utc.with_ymd_and_hms(2026, 12, 4, h, m, s).unwrap();
        assert_eq!(hour_floor(t(9, 41, 7)), t(9, 0, 0));
        assert_eq!(hour_ceil(t(9, 41, 7)), t(10, 0, 0));
        assert_eq!(hour_floor(t(9, 0, 0)), t(9, 0, 0));
        assert_eq!(hour_ceil(t(9, 0, 0)), t(9, 0, 0));
        let just_after = t(9, 0, 0) + chrono::TimeDelta::microseconds(1);
        assert_eq!(hour_ceil(just_after), t(10, 0, 0));
    }

    #[test]
    fn unknown_status_codes_are_refused() {
        assert!(status_param(Some(7)).is_err());
        assert_eq!(status_param(Some(2)).unwrap(), Some(DeliveryStatus::Fail));
    }
}
