//! `/api/v1/app/{app_id}/msg`: message ingestion and the message log.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::applications::{self, ApplicationIn};
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields;
use super::idempotency::{self, FoldedKey};
use super::openapi::strings::PathKeyString;
use super::openapi::strings::{ChannelString, DateTimeString, EventIdString, EventTypeNameString};
use super::pagination::{ListParams, ListResponse, Ordering, limit, list_response};
use crate::domain::time::now;
use crate::domain::{
    AppKey, Channel, EventId, EventTypeName, Message, Payload, PayloadError, Priority,
};
use crate::store::{
    Direct, DirectClaims, InlineApplication, MessageFilter, NewMessage, Order, StoreError,
    StoredResponse,
};

/// The most channels a message may carry.
const MAX_CHANNELS: usize = 5;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageIn {
    #[schema(value_type = EventTypeNameString)]
    pub event_type: String,
    /// The JSON object delivered to endpoints, byte for byte.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    /// Your id for the message; a second message with the same one is refused (409).
    #[schema(value_type = Option<EventIdString>)]
    pub event_id: Option<String>,
    #[schema(value_type = Option<Vec<ChannelString>>, max_items = 5)]
    pub channels: Option<Vec<String>>,
    /// Creates the application (with the path as its uid) if it does not exist yet.
    pub application: Option<ApplicationIn>,
    /// Attempt no delivery before this time. The message is stored at once (202) and listed
    /// by `GET …/msg/scheduled` until then; `DELETE …/msg/{msg_id}/schedule` cancels it
    /// before it goes out. A time already past delivers at once; one more than the
    /// configured horizon ahead (`deliver_at_horizon_days`, 90 days by default) is refused.
    #[schema(value_type = Option<DateTimeString>)]
    pub deliver_at: Option<String>,
    /// Days the payload is kept; then it is removed as an expunge removes it (the message
    /// and its attempts stay). Without this or `payloadRetentionHours`: the server's
    /// `payload_retention_days` option (by default, kept until expunged).
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 1, maximum = 90)]
    pub payload_retention_period: Option<i64>,
    /// Hours the payload is kept, instead of `payloadRetentionPeriod` (not both).
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 1, maximum = 2160)]
    pub payload_retention_hours: Option<i64>,
    /// hookd: `high`, `normal` or `low`; picks the retry policy the server configures for it
    /// (`retry_policy_high`, …), unless the endpoint or the event type has one. Absent or
    /// null: normal.
    #[schema(pattern = "^(high|normal|low)$", nullable)]
    pub priority: Option<String>,
    /// The Svix SDK's message tags and transformation parameters: hookd has neither, so a
    /// value is refused (422) rather than dropped; absent or null is fine. Left out of the
    /// document, since no value is accepted.
    #[serde(default)]
    #[schema(ignore)]
    pub tags: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(ignore)]
    pub transformations_params: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageOut {
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    /// The payload; `{}` when `with_content=false`, `{"expired": true}` once expunged.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub channels: Option<Vec<String>>,
    pub timestamp: DateTime<Utc>,
    /// The `deliverAt` the message was sent with, if any.
    pub deliver_at: Option<DateTime<Utc>>,
    /// hookd: the `priority` the message was sent with, if any.
    pub priority: Option<String>,
}

impl MessageOut {
    pub fn new(m: Message, with_content: bool) -> Self {
        Self::of(&m, with_content)
    }

    pub fn of(m: &Message, with_content: bool) -> Self {
        let payload = match (&m.payload, with_content) {
            (_, false) => raw("{}"),
            (None, true) => raw(r#"{"expired":true}"#),
            (Some(p), true) => raw(p.as_str()),
        };
        Self {
            id: m.id.to_string(),
            event_id: m.event_id.as_ref().map(|e| e.to_string()),
            event_type: m.event_type.to_string(),
            payload,
            channels: m
                .channels
                .as_ref()
                .map(|c| c.iter().map(|c| c.to_string()).collect()),
            timestamp: m.created_at,
            deliver_at: m.deliver_at,
            priority: m.priority.map(|p| p.as_str().to_owned()),
        }
    }
}

fn raw(json: &str) -> Box<RawValue> {
    // Stored payloads were valid JSON objects when accepted; a corrupt one is shown as {}
    // rather than failing the whole list.
    RawValue::from_string(json.to_owned())
        .unwrap_or_else(|_| RawValue::from_string("{}".to_owned()).expect("{} is JSON"))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentParams {
    /// Include the payload in the response (default true).
    pub with_content: Option<bool>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageListParams {
    /// How many items to return (default 50; 0 is read as 1, and values over 250 as 250).
    #[serde(default, deserialize_with = "limit")]
    #[param(minimum = 0)]
    pub limit: Option<u64>,
    /// The `iterator` (or `prevIterator`) of the previous page.
    pub iterator: Option<String>,
    /// Newest first unless `ascending`.
    pub order: Option<Ordering>,
    /// Only messages carrying this channel.
    #[param(value_type = Option<ChannelString>)]
    pub channel: Option<String>,
    /// Only messages created before this time (RFC 3339).
    #[param(value_type = Option<DateTimeString>)]
    pub before: Option<String>,
    /// Only messages created after this time (RFC 3339).
    #[param(value_type = Option<DateTimeString>)]
    pub after: Option<String>,
    /// Include payloads (default true).
    pub with_content: Option<bool>,
    /// Only messages of these event types (comma-separated or repeated).
    #[serde(default)]
    #[param(value_type = Option<Vec<EventTypeNameString>>)]
    pub event_types: Vec<String>,
}

/// The `event_types` query filter: comma-separated or repeated names.
fn event_type_filter(values: &[String]) -> Result<Option<BTreeSet<EventTypeName>>, ApiError> {
    let types = fields::query_list(values);
    if types.is_empty() {
        return Ok(None);
    }
    types
        .iter()
        .map(|t| EventTypeName::parse(t))
        .collect::<Result<BTreeSet<_>, _>>()
        .map(Some)
        .map_err(|e| ApiError::invalid(&["query", "event_types"], e.to_string()))
}

/// The `channel` query filter.
fn channel_filter(value: Option<&str>) -> Result<Option<Channel>, ApiError> {
    value
        .filter(|c| !c.is_empty())
        .map(|c| {
            Channel::parse(c).map_err(|e| ApiError::invalid(&["query", "channel"], e.to_string()))
        })
        .transpose()
}

/// The message filters shared by the message log and the messages of an endpoint.
pub fn message_filter(
    event_types: &[String],
    channel: Option<&str>,
    before: Option<&str>,
    after: Option<&str>,
) -> Result<MessageFilter, ApiError> {
    Ok(MessageFilter {
        event_types: event_type_filter(event_types)?,
        channel: channel_filter(channel)?,
        before: fields::query_time("before", before)?,
        after: fields::query_time("after", after)?,
        deliver_after: None,
    })
}

impl MessageListParams {
    pub(super) fn filter(&self) -> Result<MessageFilter, ApiError> {
        message_filter(
            &self.event_types,
            self.channel.as_deref(),
            self.before.as_deref(),
            self.after.as_deref(),
        )
    }
}

pub(super) fn new_message(
    state: &ApiState,
    app: AppKey,
    input: MessageIn,
) -> Result<NewMessage, ApiError> {
    let limit = state.settings.max_payload_bytes;
    if input.payload.get().len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "the payload is {} bytes; the limit is {limit} bytes",
            input.payload.get().len()
        )));
    }
    let payload = Payload::parse(&input.payload, state.settings.max_payload_depth)
        .map_err(|e: PayloadError| fields::body_error("payload", e))?;
    if input.tags.is_some() {
        return Err(fields::body_error(
            "tags",
            "hookd does not support message tags; leave the field out",
        ));
    }
    if input.transformations_params.is_some() {
        return Err(fields::body_error(
            "transformationsParams",
            "hookd does not run transformations; leave the field out",
        ));
    }
    let event_type =
        EventTypeName::parse(&input.event_type).map_err(|e| fields::body_error("eventType", e))?;
    let event_id = input
        .event_id
        .map(|e| EventId::parse(&e).map_err(|err| fields::body_error("eventId", err)))
        .transpose()?;
    let channels = fields::channels("channels", input.channels, MAX_CHANNELS)?
        .map(|set| set.into_iter().collect::<Vec<_>>());
    let payload_retention = payload_retention(
        input.payload_retention_period,
        input.payload_retention_hours,
    )?
    .or(state.settings.payload_retention);
    let deliver_at = fields::body_time("deliverAt", input.deliver_at.as_deref())?;
    if let Some(at) = deliver_at {
        let horizon = state.settings.deliver_at_horizon;
        if at > now() + horizon {
            return Err(fields::body_error(
                "deliverAt",
                format!(
                    "must be at most {} days ahead (the server's deliver_at_horizon_days)",
                    horizon.num_days()
                ),
            ));
        }
    }
    let priority = input
        .priority
        .map(|p| {
            Priority::parse(&p)
                .ok_or_else(|| fields::body_error("priority", "must be high, normal or low"))
        })
        .transpose()?;
    let create_app = match input.application {
        None => None,
        Some(app_in) => {
            let new = applications::new_application(app_in)?;
            if let (Some(uid), AppKey::Uid(path_uid)) = (&new.uid, &app) {
                if uid != path_uid {
                    return Err(ApiError::invalid(
                        &["body", "application", "uid"],
                        "must match the application uid in the path",
                    ));
                }
            }
            Some(InlineApplication {
                name: new.name,
                rate_limit: new.rate_limit,
                metadata: new.metadata,
            })
        }
    };
    Ok(NewMessage {
        app,
        create_app,
        event_type,
        event_id,
        channels,
        payload,
        payload_retention,
        deliver_at,
        priority,
        only_endpoint: None,
        direct: None,
        key: None,
    })
}

/// How long the message keeps its payload, if it says: `payloadRetentionPeriod` days or
/// `payloadRetentionHours` hours (the SDK document's ranges), not both.
fn payload_retention(days: Option<i64>, hours: Option<i64>) -> Result<Option<TimeDelta>, ApiError> {
    match (days, hours) {
        (Some(_), Some(_)) => Err(fields::body_error(
            "payloadRetentionHours",
            "give payloadRetentionPeriod or payloadRetentionHours, not both",
        )),
        (Some(days), None) if !(1..=90).contains(&days) => Err(fields::body_error(
            "payloadRetentionPeriod",
            "must be between 1 and 90 (days)",
        )),
        (None, Some(hours)) if !(1..=2160).contains(&hours) => Err(fields::body_error(
            "payloadRetentionHours",
            "must be between 1 and 2160 (hours)",
        )),
        (Some(days), None) => Ok(Some(TimeDelta::days(days))),
        (None, Some(hours)) => Ok(Some(TimeDelta::hours(hours))),
        (None, None) => Ok(None),
    }
}

/// Writes the message and hands its deliveries to this node's dispatcher: those it had room
/// for directly, the rest by waking it. Runs as a task of its own, so a client that goes
/// away mid-request cannot leave deliveries written claimed but never handed over.
pub(super) async fn accept(state: &ApiState, new: NewMessage) -> Result<Message, StoreError> {
    accept_keyed(state, new).await.map(|(message, _)| message)
}

/// [`accept`], with the response stored for the message's idempotency key, if it had one
/// ([`NewMessage::key`]).
async fn accept_keyed(
    state: &ApiState,
    mut new: NewMessage,
) -> Result<(Message, Option<StoredResponse>), StoreError> {
    // A scheduled message's deliveries are not due yet, so they are not taken directly; the
    // wake below has the dispatcher set its timer for them (and on PostgreSQL the
    // notification does the same on every node).
    let scheduled = new.deliver_at.is_some_and(|at| at > now());
    let ticket = state
        .dispatcher
        .as_ref()
        .filter(|_| !scheduled)
        .and_then(|d| d.direct_claims());
    new.direct = ticket.clone().map(|t| Direct(t as Arc<dyn DirectClaims>));
    let store = state.store.clone();
    let wake = state.message_enqueued.clone();
    let accepted = state.metrics.messages_accepted.clone();
    // Off, this is `None` and nothing below touches the tracer.
    let span = state.traces.start().map(|s| (s, state.traces.clone()));
    let written = tokio::spawn(async move {
        let enqueued = store.enqueue_message(new).await?;
        accepted.increment(1);
        if let Some((start, traces)) = span {
            let direct = enqueued.claimed.len();
            traces.ingest(start, &enqueued.message, direct + enqueued.pending, direct);
        }
        if let Some(ticket) = ticket {
            ticket.hand_over(enqueued.claimed);
        }
        if enqueued.pending > 0 {
            wake.notify_one();
        }
        Ok((enqueued.message, enqueued.response))
    });
    written.await.map_err(|e| {
        StoreError::Corrupt(format!("accepting a message stopped unexpectedly: {e}"))
    })?
}

/// Accepts a message: once this answers 202, the message and its deliveries are on disk.
/// A place among the messages this node is accepting at once (`max_pending_messages`),
/// taken before the body is read and held until the answer. None left: 503 at once, before
/// anything is read or written, instead of a wait behind a store that cannot keep up.
pub struct MessagePermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl FromRequestParts<ApiState> for MessagePermit {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        match state.message_permits.clone().try_acquire_owned() {
            Ok(permit) => Ok(MessagePermit { _permit: permit }),
            Err(_) => Err(ApiError::TooManyPendingMessages(
                state.settings.max_pending_messages,
            )),
        }
    }
}

#[utoipa::path(post, operation_id = "v1.message.create", path = "/api/v1/app/{app_id}/msg", tag = "Message",
    params(("app_id" = PathKeyString, Path), ContentParams), request_body = MessageIn,
    responses((status = 202, body = MessageOut)))]
pub async fn create(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    QueryParams(params): QueryParams<ContentParams>,
    _place: MessagePermit,
    key: Option<Extension<FoldedKey>>,
    JsonBody(input): JsonBody<MessageIn>,
) -> Result<Response, ApiError> {
    // By uid, the operational application is unknown here. Its id is shown nowhere, so a
    // message is not sent to it by id either; looking it up would cost every message a read.
    let app = applications::app_key(&app_id)?;
    let mut new = new_message(&state, app, input)?;
    state
        .payload_schemas
        .check(&*state.store, &new.event_type, &new.payload, &["body"])
        .await?;
    let with_content = params.with_content.unwrap_or(true);
    // The request's idempotency key is claimed, and its response stored, with the message.
    new.key = key.as_ref().map(|Extension(key)| {
        key.write(move |message| StoredResponse {
            status: StatusCode::ACCEPTED.as_u16(),
            body: serde_json::to_vec(&MessageOut::of(message, with_content)).unwrap_or_default(),
        })
    });
    match accept_keyed(&state, new).await {
        Ok((_, Some(stored))) => {
            if let Some(Extension(key)) = &key {
                key.stored();
            }
            Ok(idempotency::replay(stored))
        }
        Ok((message, None)) => Ok((
            StatusCode::ACCEPTED,
            Json(MessageOut::new(message, with_content)),
        )
            .into_response()),
        Err(StoreError::KeyTaken(claim)) => {
            let answer = ApiError::Conflict("the idempotency key is taken".into());
            if let Some(Extension(key)) = &key {
                key.taken(claim);
            }
            Err(answer)
        }
        Err(StoreError::NotFound) => Err(ApiError::not_found("application")),
        Err(other) => Err(other.into()),
    }
}

#[utoipa::path(get, operation_id = "v1.message.list", path = "/api/v1/app/{app_id}/msg", tag = "Message",
    params(("app_id" = PathKeyString, Path), MessageListParams),
    responses((status = 200, body = ListResponse<MessageOut>)))]
pub async fn list(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    QueryParams(params): QueryParams<MessageListParams>,
) -> Result<Json<ListResponse<MessageOut>>, ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let page = ListParams::page_of(
        params.limit,
        params.iterator.as_deref(),
        params.order,
        Order::Descending,
    )?;
    let filter = params.filter()?;
    let rows = state.store.list_messages(&app.id, &filter, &page).await?;
    let with_content = params.with_content.unwrap_or(true);
    Ok(Json(list_response(
        rows,
        &page,
        |m| m.id.to_string(),
        |m| MessageOut::new(m, with_content),
    )))
}

/// A message by id, or by the `eventId` it was created with.
#[utoipa::path(get, operation_id = "v1.message.get", path = "/api/v1/app/{app_id}/msg/{msg_id}", tag = "Message",
    params(("app_id" = PathKeyString, Path), ("msg_id" = PathKeyString, Path), ContentParams),
    responses((status = 200, body = MessageOut)))]
pub async fn get(
    State(state): State<ApiState>,
    Path((app_id, msg_id)): Path<(String, String)>,
    QueryParams(params): QueryParams<ContentParams>,
) -> Result<Json<MessageOut>, ApiError> {
    let message = find(&state, &app_id, &msg_id).await?;
    Ok(Json(MessageOut::new(
        message,
        params.with_content.unwrap_or(true),
    )))
}

pub async fn find(state: &ApiState, app_id: &str, msg_id: &str) -> Result<Message, ApiError> {
    let app = applications::find(state, app_id).await?;
    let key = fields::message_key(msg_id)?;
    state
        .store
        .get_message(&app.id, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))
}

/// Deletes the payload of a message; its record and delivery log stay.
#[utoipa::path(delete, operation_id = "v1.message.expunge-content", path = "/api/v1/app/{app_id}/msg/{msg_id}/content", tag = "Message",
    params(("app_id" = PathKeyString, Path), ("msg_id" = PathKeyString, Path)),
    responses((status = 204)))]
pub async fn expunge_content(
    State(state): State<ApiState>,
    Path((app_id, msg_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let message = find(&state, &app_id, &msg_id).await?;
    state
        .store
        .expunge_message_content(&message.app_id, &message.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
