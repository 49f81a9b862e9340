//! Health routes, without authentication: `GET /api/v1/health` (Svix's: can this node reach
//! its store), `GET /api/v1/health/ping` (liveness) and hookd's `GET /api/v1/health/ready`
//! (readiness: the store answers and the delivery queue is not stuck).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

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

/// What the readiness check found.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessOut {
    /// Whether this node should receive traffic.
    pub ready: bool,
    /// `store_unreachable` or `queue_lagging` when not ready.
    pub reason: Option<&'static str>,
    /// Whether the store answered.
    pub store_reachable: bool,
    /// How long the longest-waiting due delivery has waited, in seconds (0 when none is
    /// due; absent when the store did not answer).
    pub oldest_due_age_seconds: Option<f64>,
    /// `ready_max_lag_secs`, when set: the queue lags when its oldest due delivery has
    /// waited longer.
    pub max_lag_seconds: Option<u64>,
    /// Why the check failed, for a person.
    pub detail: Option<String>,
    /// This node's id in the `node` table and in the claims it makes (PostgreSQL, on nodes
    /// that deliver; null otherwise).
    pub node_id: Option<String>,
    /// Delivering nodes with a fresh heartbeat, this one included, as this node's last
    /// heartbeat counted them (null where `nodeId` is). Informational: it does not bear
    /// on `ready`.
    pub live_nodes: Option<u64>,
}

/// Readiness: 200 when the store answers and no due delivery has waited longer than
/// `ready_max_lag_secs` (when set); 503 otherwise. Both carry the same facts.
#[utoipa::path(get, operation_id = "v1.health.ready", path = "/api/v1/health/ready", tag = "Health", security(()),
    responses((status = 200, body = ReadinessOut, description = "ready"),
        (status = 503, body = ReadinessOut, description = "the store is unreachable or the delivery queue lags")))]
pub async fn ready(State(state): State<ApiState>) -> (StatusCode, Json<ReadinessOut>) {
    let max_lag = state.settings.ready_max_lag_secs;
    let now = state.clock.now();
    let mut out = ReadinessOut {
        ready: true,
        reason: None,
        store_reachable: true,
        oldest_due_age_seconds: None,
        max_lag_seconds: max_lag,
        detail: None,
        node_id: state.node.as_ref().map(|n| n.id.clone()),
        live_nodes: state.node.as_ref().map(|n| n.live()),
    };
    match state.store.oldest_due(now).await {
        Ok(oldest) => {
            let age = oldest.map_or(0.0, |due| {
                (now - due).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6
            });
            out.oldest_due_age_seconds = Some(age);
            if let Some(max) = max_lag.filter(|max| age > *max as f64) {
                out.ready = false;
                out.reason = Some("queue_lagging");
                out.detail = Some(format!(
                    "the oldest due delivery has waited {age:.0} s, more than ready_max_lag_secs ({max} s)"
                ));
            }
        }
        Err(e) => {
            out.ready = false;
            out.reason = Some("store_unreachable");
            out.store_reachable = false;
            out.detail = Some(format!("the store did not answer: {e}"));
        }
    }
    let status = if out.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(out))
}
