//! Scheduled messages (sent with a `deliverAt` still ahead): listing them, and cancelling one
//! before it goes out. hookd's own routes, beside the Svix message routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::ApiState;
use super::applications;
use super::error::ApiError;
use super::extract::QueryParams;
use super::messages::{self, MessageListParams, MessageOut};
use super::openapi::strings::PathKeyString;
use super::pagination::{ListParams, ListResponse, list_response};
use crate::domain::time::now;
use crate::store::{Order, StoreError};

/// The application's messages whose `deliverAt` is still ahead, newest first (the message
/// log's filters apply). A message leaves this list when its time comes.
#[utoipa::path(get, operation_id = "v1.message.list-scheduled", path = "/api/v1/app/{app_id}/msg/scheduled", tag = "Message",
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
    let mut filter = params.filter()?;
    filter.deliver_after = Some(now());
    let rows = state.store.list_messages(&app.id, &filter, &page).await?;
    let with_content = params.with_content.unwrap_or(true);
    Ok(Json(list_response(
        rows,
        &page,
        |m| m.id.to_string(),
        |m| MessageOut::new(m, with_content),
    )))
}

/// Cancels a scheduled message before any of its deliveries started: the message and its
/// deliveries are deleted, as if it had never been sent (its `eventId` may be used again).
/// 409 if it was not sent with a `deliverAt`, or once a delivery has started.
#[utoipa::path(delete, operation_id = "v1.message.cancel-scheduled", path = "/api/v1/app/{app_id}/msg/{msg_id}/schedule", tag = "Message",
    params(("app_id" = PathKeyString, Path), ("msg_id" = PathKeyString, Path)),
    responses((status = 204), (status = 409, description = "not scheduled, or its delivery has started")))]
pub async fn cancel(
    State(state): State<ApiState>,
    Path((app_id, msg_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    // By id or `eventId`, as the other message routes.
    let message = messages::find(&state, &app_id, &msg_id).await?;
    match state
        .store
        .cancel_scheduled(&message.app_id, &message.id)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        // Cancelled by a concurrent request.
        Err(StoreError::NotFound) => Err(ApiError::not_found("message")),
        Err(e) => Err(e.into()),
    }
}
