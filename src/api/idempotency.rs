//! `Idempotency-Key` on POST requests: a retried request gets the first one's response.
//!
//! The first request with a key claims it in the store, runs, and stores its response
//! (status and body) unless it failed with a 5xx or a 408, in which case the key is released
//! so a retry runs again. A later request with the same key and path gets the stored response
//! without running. A request arriving while the first is still running waits for it
//! (up to [`WAIT_FOR_FIRST`]), then gets 409. A claim left by a request that died is taken
//! over after [`LOCK_EXPIRY`]. Keys are scoped to the request path, and kept for
//! `idempotency_ttl_hours`. Any key is usable, as the contract sets no limits on it: only its
//! hash is stored. An empty key is no key.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiState;
use super::error::ApiError;
use crate::domain::time::now;
use crate::store::{IdempotencyClaim, StoredResponse};

const HEADER: &str = "idempotency-key";
/// How long a request waits for an earlier one with the same key to finish.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(50);
/// After this, a claim whose request never finished is taken over.
const LOCK_EXPIRY: Duration = Duration::from_secs(60);
/// Responses larger than this are not kept (none of the API's responses come close).
const MAX_STORED_BODY: usize = 4 << 20;

pub async fn idempotent(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if request.method() != Method::POST {
        return Ok(next.run(request).await);
    }
    let Some(key) = request.headers().get(HEADER).filter(|k| !k.is_empty()) else {
        return Ok(next.run(request).await);
    };
    let scoped = scoped_key(request.uri().path(), key.as_bytes());
    let store = &state.store;

    let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
    loop {
        let expired_before = now() - LOCK_EXPIRY;
        match store.claim_idempotency_key(&scoped, expired_before).await? {
            IdempotencyClaim::Claimed => break,
            IdempotencyClaim::Completed(stored) => return Ok(replay(stored)),
            IdempotencyClaim::InProgress if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(POLL_EVERY).await;
            }
            IdempotencyClaim::InProgress => {
                return Err(ApiError::Conflict(
                    "a request with this idempotency key is still being processed".into(),
                ));
            }
        }
    }

    let response = next.run(request).await;
    let status = response.status();
    // Nothing was done (the store failed, or the body never arrived): let a retry run.
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        store.release_idempotency_key(&scoped).await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_STORED_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => {
            store.release_idempotency_key(&scoped).await?;
            return Err(ApiError::Internal(anyhow::anyhow!(
                "response body unreadable: {e}"
            )));
        }
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        body: bytes.to_vec(),
    };
    // The request has done its work: its answer stands even if it cannot be kept for replay
    // (a 503 here would tell the client to retry something that succeeded). A retry then
    // finds the key in progress and waits, and gets 409 (see the README on retries).
    if let Err(e) = store.complete_idempotency_key(&scoped, &stored).await {
        tracing::error!(error = %e, "storing a response for idempotent replay failed");
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn scoped_key(path: &str, key: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(key);
    hex::encode(hasher.finalize())
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    if stored.body.is_empty() {
        return status.into_response();
    }
    let mut response = (status, stored.body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
