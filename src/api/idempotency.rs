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
//!
//! A new message (`POST /api/v1/app/{app_id}/msg`) is the request the Svix SDKs send most,
//! each with a key. Its key is not claimed ahead: the handler claims it in the message's own
//! write and stores the response with it ([`FoldedKey`], `store::KeyedWrite`), so on SQLite
//! claim, message and response share one transaction. What a client sees is the same: when
//! the key is taken, this middleware answers as above (the stored response, or a wait); a
//! request the handler refuses before writing (a 4xx) has its response stored as any other
//! request's. One case differs: a message request that waited for an earlier one with its
//! key, which then failed (5xx) and let the key go, was never run itself and is answered
//! 409, to be sent again (the ordinary path would run it then).

use std::sync::{Arc, Mutex};
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
use crate::domain::{Message, Timestamp};
use crate::store::{IdempotencyClaim, IdempotencyStore, KeyedWrite, StoredResponse};

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
    let store = &*state.store;
    if is_new_message(request.uri().path()) {
        return folded(store, scoped, request, next).await;
    }

    let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
    let mut claim = store
        .claim_idempotency_key(&scoped, now() - LOCK_EXPIRY)
        .await?;
    loop {
        match claim {
            IdempotencyClaim::Claimed => break,
            IdempotencyClaim::Completed(stored) => return Ok(replay(stored)),
            IdempotencyClaim::InProgress => {
                claim = wait_for_first(store, &scoped, deadline).await?;
            }
        }
    }

    let response = next.run(request).await;
    keep(store, &scoped, response).await
}

/// Waits a poll, then claims `scoped` again; 409 once the first request has had
/// [`WAIT_FOR_FIRST`].
async fn wait_for_first(
    store: &(dyn IdempotencyStore + Send + Sync),
    scoped: &str,
    deadline: tokio::time::Instant,
) -> Result<IdempotencyClaim, ApiError> {
    if tokio::time::Instant::now() >= deadline {
        return Err(ApiError::Conflict(
            "a request with this idempotency key is still being processed".into(),
        ));
    }
    tokio::time::sleep(POLL_EVERY).await;
    Ok(store
        .claim_idempotency_key(scoped, now() - LOCK_EXPIRY)
        .await?)
}

/// `POST /api/v1/app/{app_id}/msg`, whose handler claims the key with its write.
fn is_new_message(path: &str) -> bool {
    let mut parts = path.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(""), Some("api"), Some("v1"), Some("app"), Some(app), Some("msg"), None) if !app.is_empty()
    )
}

/// A new message: the handler claims the key in its write (see the module docs).
async fn folded(
    store: &(dyn IdempotencyStore + Send + Sync),
    scoped: String,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = FoldedKey {
        scoped,
        expired_before: now() - LOCK_EXPIRY,
        outcome: Arc::default(),
    };
    request.extensions_mut().insert(key.clone());
    let response = next.run(request).await;
    let outcome = std::mem::take(&mut *key.outcome.lock().unwrap_or_else(|e| e.into_inner()));
    let scoped = &key.scoped;
    let mut claim = match outcome {
        Folded::Stored => return Ok(response),
        Folded::NotWritten => {
            // Refused before any write, or by the store's (which left the key free): kept
            // for replay as any request's answer is, unless another request holds the key.
            let status = response.status();
            if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
                return Ok(response);
            }
            return match store
                .claim_idempotency_key(scoped, now() - LOCK_EXPIRY)
                .await?
            {
                IdempotencyClaim::Claimed => keep(store, scoped, response).await,
                IdempotencyClaim::Completed(stored) => Ok(replay(stored)),
                IdempotencyClaim::InProgress => Ok(response),
            };
        }
        Folded::Taken(claim) => claim,
    };
    let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
    loop {
        match claim {
            IdempotencyClaim::Completed(stored) => return Ok(replay(stored)),
            IdempotencyClaim::InProgress => {
                claim = wait_for_first(store, scoped, deadline).await?;
            }
            IdempotencyClaim::Claimed => {
                store.release_idempotency_key(scoped).await?;
                return Err(ApiError::Conflict(
                    "an earlier request with this idempotency key failed while this one \
                     waited for it, and this one was not run: send it again"
                        .into(),
                ));
            }
        }
    }
}

/// An idempotency key for the new message handler to claim in its write, and what became of
/// it (see the module docs).
#[derive(Clone)]
pub struct FoldedKey {
    scoped: String,
    expired_before: Timestamp,
    outcome: Arc<Mutex<Folded>>,
}

#[derive(Default)]
enum Folded {
    /// Nothing was written for the key (the default, whatever the handler answered).
    #[default]
    NotWritten,
    /// The message was written and the response stored for the key.
    Stored,
    /// The key was taken: the message was not written.
    Taken(IdempotencyClaim),
}

impl FoldedKey {
    /// The key for the message's write, storing what `respond` makes of the message.
    pub fn write(
        &self,
        respond: impl Fn(&Message) -> StoredResponse + Send + Sync + 'static,
    ) -> KeyedWrite {
        KeyedWrite {
            key: self.scoped.clone(),
            expired_before: self.expired_before,
            respond: Arc::new(respond),
        }
    }

    /// The message was written with its response stored.
    pub fn stored(&self) {
        self.set(Folded::Stored);
    }

    /// The key was taken; the handler's answer is replaced.
    pub fn taken(&self, claim: IdempotencyClaim) {
        self.set(Folded::Taken(claim));
    }

    fn set(&self, outcome: Folded) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = outcome;
    }
}

/// Stores the response of a request holding `scoped` for replay, or lets the key go if it
/// did nothing (a 5xx or a 408).
async fn keep(
    store: &(dyn IdempotencyStore + Send + Sync),
    scoped: &str,
    response: Response,
) -> Result<Response, ApiError> {
    let status = response.status();
    // Nothing was done (the store failed, or the body never arrived): let a retry run.
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        store.release_idempotency_key(scoped).await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_STORED_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => {
            store.release_idempotency_key(scoped).await?;
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
    if let Err(e) = store.complete_idempotency_key(scoped, &stored).await {
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

pub(super) fn replay(stored: StoredResponse) -> Response {
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
