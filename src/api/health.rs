//! `GET /api/v1/health`: whether this node can serve requests (no authentication).

use axum::extract::State;
use axum::http::StatusCode;

use super::ApiState;
use super::error::{ApiError, HttpErrorOut};

/// 204 when the store answers; 503 when it does not.
#[utoipa::path(get, operation_id = "v1.health.get", path = "/api/v1/health", tag = "Health", security(()),
    responses((status = 204, description = "healthy"),
        (status = 503, body = HttpErrorOut, description = "the store is unreachable")))]
pub async fn get(State(state): State<ApiState>) -> Result<StatusCode, ApiError> {
    state.store.ping().await.map_err(ApiError::Unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

/// 204 while the process is up, without checking the store (a liveness probe).
#[utoipa::path(get, operation_id = "v1.health.ping", path = "/api/v1/health/ping", tag = "Health", security(()),
    responses((status = 204, description = "the process is up")))]
pub async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}
