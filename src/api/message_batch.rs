//! hookd's own ingest routes beside the Svix message routes: batch ingest
//! (`POST …/msg/batch`) and the SDK's `precheck/active`.
//!
//! A batch is up to [`MAX_BATCH`] messages written in one transaction. Each item is checked
//! and answered on its own, exactly as `POST …/msg` would answer it (the same 422s, the
//! same 409 for a repeated `eventId`, also within the batch), so bad items do not reject
//! good ones; with `"atomic": true` any refused item leaves the whole batch unwritten. An
//! `Idempotency-Key` covers the batch as a whole (the key's stored answer is the whole
//! batch's). Answers carry no payloads, so a batch's answer stays small.

use axum::Json;
use axum::body::to_bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::ApiState;
use super::applications;
use super::error::{ApiError, HttpValidationError, ValidationItem};
use super::extract::{JsonBody, parse_json};
use super::fields;
use super::messages::{MessageIn, MessageOut, MessagePermit, new_message};
use super::openapi::strings::{ChannelString, EventTypeNameString, PathKeyString};
use crate::domain::{AppKey, Channel, EventTypeName};
use crate::store::{Cursor, Enqueued, NewMessage, Order, PageQuery, StoreError};

/// The most messages one batch may hold.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageBatchIn {
    /// The messages, each as `POST …/msg` takes it (1 to 1,000).
    #[schema(value_type = Vec<MessageIn>, min_items = 1, max_items = 1000)]
    pub messages: Vec<Box<RawValue>>,
    /// All or nothing: if any message is refused, none is written (answer 422). By default
    /// each message is accepted or refused on its own.
    #[serde(default)]
    pub atomic: bool,
}

/// One message's outcome, in the order the batch gave them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageBatchItemOut {
    /// What `POST …/msg` would have answered for this message alone: 202 accepted; 404,
    /// 409 or 422 refused; 424 not written because another item of an atomic batch was
    /// refused.
    pub status: u16,
    /// The accepted message (its payload left out: `{}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageOut>,
    /// Why it was refused: `{"code", "detail"}`, or `{"detail": [{loc, msg, type}]}` for a
    /// 422, as the single-message route's error bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageBatchOut {
    /// Only when an atomic batch was refused (422): each refused message's problems, as a
    /// 422's `detail`, `loc` pointing at the message (`["body", "messages", "1", …]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Vec<ValidationItem>>,
    pub data: Vec<MessageBatchItemOut>,
    /// Messages written.
    pub accepted: usize,
    /// Messages refused (in an atomic batch that was refused, those at fault).
    pub refused: usize,
}

/// Accepts up to 1,000 messages in one request and one transaction. 202 when every message
/// was accepted; 207 when some were refused (the others are written); 422 for an atomic
/// batch with a refused message (nothing is written); 404 when the application does not
/// exist (and no item creates it).
#[utoipa::path(post, operation_id = "v1.message.create-batch", path = "/api/v1/app/{app_id}/msg/batch", tag = "Message",
    params(("app_id" = PathKeyString, Path)), request_body = MessageBatchIn,
    responses((status = 202, body = MessageBatchOut), (status = 207, body = MessageBatchOut),
        (status = 422, body = HttpValidationError, description = "the batch itself is invalid, or an atomic batch had a refused message: then the body is also a `MessageBatchOut`")))]
pub async fn create(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    _place: MessagePermit,
    request: Request,
) -> Result<(StatusCode, Json<MessageBatchOut>), ApiError> {
    let app = applications::app_key(&app_id)?;
    let input: MessageBatchIn = read_body(&state, request).await?;
    if input.messages.is_empty() || input.messages.len() > MAX_BATCH {
        return Err(fields::body_error(
            "messages",
            format!(
                "holds {} messages; a batch holds 1 to {MAX_BATCH}",
                input.messages.len()
            ),
        ));
    }
    let mut news = Vec::with_capacity(input.messages.len());
    let mut checked: Vec<Option<ApiError>> = Vec::with_capacity(input.messages.len());
    for (i, raw) in input.messages.iter().enumerate() {
        match check_item(&state, &app, i, raw).await {
            Ok(new) => {
                news.push(new);
                checked.push(None);
            }
            Err(e) => checked.push(Some(e)),
        }
    }
    let any_invalid = news.len() < checked.len();
    // An item's inline application is the whole batch's: whichever item comes first creates
    // it, so no item depends on its place (both stores then answer alike).
    if let Some(inline) = news.iter().find_map(|n| n.create_app.clone()) {
        for new in news.iter_mut().filter(|n| n.create_app.is_none()) {
            new.create_app = Some(inline.clone());
        }
    }
    let written = if news.is_empty() || (input.atomic && any_invalid) {
        // Nothing to write: an atomic batch with an invalid item is refused before the store.
        Vec::new()
    } else {
        accept_batch(&state, news, input.atomic).await?
    };
    answer(checked, written, input.atomic)
}

/// The body, read within `body_read_timeout_secs` and up to `max_batch_bytes`.
async fn read_body(state: &ApiState, request: Request) -> Result<MessageBatchIn, ApiError> {
    let limit = state.settings.max_batch_bytes;
    let timeout = state.settings.body_read_timeout;
    let read = tokio::time::timeout(timeout, to_bytes(request.into_body(), limit));
    let bytes = read
        .await
        .map_err(|_| ApiError::BodyTimeout(timeout.as_secs()))?
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!(
                "the batch is larger than {limit} bytes (the server's max_batch_bytes)"
            ))
        })?;
    parse_json(&bytes)
}

/// One item, checked as `POST …/msg` checks its body (its payload against its event type's
/// schema too); its 422s point into the batch (`["body", "messages", "3", "eventType"]`).
async fn check_item(
    state: &ApiState,
    app: &AppKey,
    index: usize,
    raw: &RawValue,
) -> Result<NewMessage, ApiError> {
    let checked = match parse_json::<MessageIn>(raw.get().as_bytes())
        .and_then(|input| new_message(state, app.clone(), input))
    {
        Ok(new) => state
            .payload_schemas
            .check(&*state.store, &new.event_type, &new.payload, &["body"])
            .await
            .map(|()| new),
        Err(e) => Err(e),
    };
    checked.map_err(|e| match e {
        ApiError::Validation(items) => ApiError::Validation(
            items
                .into_iter()
                .map(|item| within_batch(item, index))
                .collect(),
        ),
        other => other,
    })
}

fn within_batch(mut item: ValidationItem, index: usize) -> ValidationItem {
    let at = usize::from(item.loc.first().is_some_and(|l| l == "body"));
    item.loc
        .splice(at..at, ["messages".to_owned(), index.to_string()]);
    if at == 0 {
        item.loc.insert(0, "body".to_owned());
    }
    item
}

/// Writes the batch, then wakes this node's dispatcher for the deliveries it holds. Runs as
/// a task of its own, so a client going away cannot lose the wake-up of what was written.
async fn accept_batch(
    state: &ApiState,
    news: Vec<NewMessage>,
    atomic: bool,
) -> Result<Vec<Result<Enqueued, StoreError>>, ApiError> {
    let store = state.store.clone();
    let wake = state.message_enqueued.clone();
    let accepted = state.metrics.messages_accepted.clone();
    // Off, this is `None` and nothing below touches the tracer.
    let span = state.traces.start().map(|s| (s, state.traces.clone()));
    let task = tokio::spawn(async move {
        let results = store.enqueue_batch(news, atomic).await?;
        let refused = results.iter().any(Result::is_err);
        if !(atomic && refused) {
            let ok = results.iter().filter(|r| r.is_ok()).count();
            accepted.increment(ok as u64);
            if let Some((start, traces)) = &span {
                // One span per message written, each the root of its message's trace.
                for e in results.iter().flatten() {
                    let direct = e.claimed.len();
                    traces.ingest(*start, &e.message, direct + e.pending, direct);
                }
            }
            if results.iter().flatten().any(|e| e.pending > 0) {
                wake.notify_one();
            }
        }
        Ok::<_, StoreError>(results)
    });
    let results = task.await.map_err(|e| {
        StoreError::Corrupt(format!("accepting a batch stopped unexpectedly: {e}"))
    })??;
    Ok(results)
}

/// The answer: one item per message, in order.
fn answer(
    checked: Vec<Option<ApiError>>,
    written: Vec<Result<Enqueued, StoreError>>,
    atomic: bool,
) -> Result<(StatusCode, Json<MessageBatchOut>), ApiError> {
    let mut written = written.into_iter();
    let outcomes: Vec<Result<Enqueued, ApiError>> = checked
        .into_iter()
        .map(|c| match c {
            Some(e) => Err(e),
            // Items that passed the checks were written (or tried) in order; none left means
            // an atomic batch refused before the store.
            None => match written.next() {
                Some(Ok(enqueued)) => Ok(enqueued),
                Some(Err(e)) => Err(store_refusal(e)),
                None => Err(ApiError::Validation(Vec::new())),
            },
        })
        .collect();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(e) if !is_placeholder(e)))
        .count();
    if refused == outcomes.len()
        && outcomes
            .iter()
            .all(|o| matches!(o, Err(ApiError::NotFound(_))))
    {
        return Err(ApiError::not_found("application"));
    }
    let nothing_written = atomic && refused > 0;
    let detail = nothing_written.then(|| {
        outcomes
            .iter()
            .enumerate()
            .flat_map(|(i, o)| match o {
                Err(ApiError::Validation(items)) => items.clone(),
                Err(e) => vec![ValidationItem::new(
                    &["body", "messages", &i.to_string()],
                    e.to_string(),
                    e.code(),
                )],
                Ok(_) => Vec::new(),
            })
            .collect()
    });
    let data: Vec<MessageBatchItemOut> = outcomes
        .into_iter()
        .map(|o| item(o, nothing_written))
        .collect();
    let accepted = if nothing_written {
        0
    } else {
        data.len() - refused
    };
    let status = if refused == 0 {
        StatusCode::ACCEPTED
    } else if nothing_written {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((
        status,
        Json(MessageBatchOut {
            detail,
            data,
            accepted,
            refused,
        }),
    ))
}

/// The stand-in for an item of an atomic batch that was refused before it was tried.
fn is_placeholder(e: &ApiError) -> bool {
    matches!(e, ApiError::Validation(items) if items.is_empty())
}

fn store_refusal(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("application"),
        other => other.into(),
    }
}

fn item(outcome: Result<Enqueued, ApiError>, nothing_written: bool) -> MessageBatchItemOut {
    match outcome {
        Err(e) if !is_placeholder(&e) => MessageBatchItemOut {
            status: e.status().as_u16(),
            message: None,
            error: Some(e.body()),
        },
        Ok(enqueued) if !nothing_written => MessageBatchItemOut {
            status: StatusCode::ACCEPTED.as_u16(),
            message: Some(MessageOut::new(enqueued.message, false)),
            error: None,
        },
        _ => MessageBatchItemOut {
            status: StatusCode::FAILED_DEPENDENCY.as_u16(),
            message: None,
            error: Some(serde_json::json!({
                "code": "batch_not_written",
                "detail": "not written: the batch is atomic and another of its messages was refused",
            })),
        },
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePrecheckIn {
    #[schema(value_type = EventTypeNameString)]
    pub event_type: String,
    #[schema(value_type = Option<Vec<ChannelString>>, max_items = 10)]
    pub channels: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePrecheckOut {
    /// Whether any enabled endpoint of the application would get a message of this event
    /// type with these channels.
    pub active: bool,
}

/// Endpoints read per page while looking for one that would get the message.
const PRECHECK_PAGE: usize = 250;

/// Whether a message of this event type (and channels) would go anywhere: any enabled
/// endpoint whose event type and channel filters accept it. Writes nothing.
#[utoipa::path(post, operation_id = "v1.message.precheck", path = "/api/v1/app/{app_id}/msg/precheck/active", tag = "Message",
    params(("app_id" = PathKeyString, Path)), request_body = MessagePrecheckIn,
    responses((status = 200, body = MessagePrecheckOut)))]
pub async fn precheck(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    JsonBody(input): JsonBody<MessagePrecheckIn>,
) -> Result<Json<MessagePrecheckOut>, ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let event_type =
        EventTypeName::parse(&input.event_type).map_err(|e| fields::body_error("eventType", e))?;
    let channels: Option<Vec<Channel>> =
        fields::channels("channels", input.channels, 10)?.map(|set| set.into_iter().collect());
    let mut cursor = Cursor::Start;
    loop {
        let page = PageQuery {
            limit: PRECHECK_PAGE,
            cursor,
            order: Order::Ascending,
        };
        let endpoints = state.store.list_endpoints(&app.id, None, &page).await?;
        if endpoints
            .iter()
            .any(|e| !e.disabled && e.subscription.accepts(&event_type, channels.as_deref()))
        {
            return Ok(Json(MessagePrecheckOut { active: true }));
        }
        match endpoints.last() {
            Some(last) if endpoints.len() == PRECHECK_PAGE => {
                cursor = Cursor::After(last.id.to_string());
            }
            _ => return Ok(Json(MessagePrecheckOut { active: false })),
        }
    }
}
