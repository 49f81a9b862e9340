//! The one place that turns failures into HTTP responses.
//!
//! Error policy:
//! - Bad input is the caller's to fix, so it gets a 4xx with a message saying what to change:
//!   400 for a body that is not JSON, 413 for one that is too large, 422 (with the field's
//!   location) for JSON that does not fit the schema or a value the domain rejects.
//! - 401 for a missing, unknown or expired token; 403 for a token that may not do this
//!   (see `auth`); 429, with `Retry-After` and `X-RateLimit-*`, for a token over its
//!   rate limit; 404 for an unknown resource, 409 for a conflict with
//!   stored state. These bodies are `{"code": …, "detail": …}`, as the Svix contract has it;
//!   422 bodies are `{"detail": [{"loc": […], "msg": …, "type": …}]}`.
//! - 408 when the request body does not arrive within `body_read_timeout_secs`.
//! - 503, with `Retry-After`, when the store is unreachable, overloaded, full or failing
//!   (whichever backend, whichever route), when the server is at its connection cap, and
//!   when the node already has `max_pending_messages` messages being accepted: nothing was
//!   written, and the request may be retried as is.
//! - 504, with `Retry-After`, when the request took longer than `api_request_timeout_secs`
//!   (a store that stopped answering): a write may or may not have been applied, so retry
//!   with the same `Idempotency-Key` or `eventId`.
//! - 500 only for bugs and unexpected database errors; the cause is logged once (by the
//!   trace middleware, with the request) and never sent to the client.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// What a 503 tells the client to wait, in seconds: long enough for a pool to free a
/// connection or a database to fail over, short enough not to matter when it was a blip.
const RETRY_AFTER_SECS: &str = "2";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("authentication failed: {0}")]
    Unauthorized(&'static str),
    /// A valid token that may not do this (an ability it lacks, a route outside the one
    /// application it is limited to).
    #[error("{0}")]
    Forbidden(String),
    /// A stored token over its rate limit: 429 with `Retry-After` and the `X-RateLimit-*`
    /// headers.
    #[error(
        "this token made its {} requests of the hour (its rate limit); retry in {} s",
        .0.limit, .0.retry_after
    )]
    RateLimited(super::auth::RateInfo),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("validation failed")]
    Validation(Vec<ValidationItem>),
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    #[error("the server has too many open connections; retry later")]
    TooManyConnections,
    #[error(
        "this node is already accepting {0} messages, its limit (max_pending_messages); \
         nothing was written: retry later"
    )]
    TooManyPendingMessages(usize),
    #[error(
        "the request did not finish within {0} s (api_request_timeout_secs): the store is \
         slow or unreachable; a write may or may not have been applied, so retry with the \
         same Idempotency-Key or eventId"
    )]
    RequestTimeout(u64),
    #[error("the store is unavailable")]
    Unavailable(#[source] StoreError),
    /// A stored credential cannot be decrypted (a main key missing from the configuration,
    /// or altered data): a 500 that says so, naming the endpoint and the key id.
    #[error("{0}")]
    SecretUnreadable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// One problem with the request, in the Svix/FastAPI shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ValidationItem {
    /// Where the problem is: `["body", "url"]`, `["query", "limit"]`, `["path", "app_id"]`.
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl ValidationItem {
    pub fn new(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc: loc.iter().map(|s| s.to_string()).collect(),
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }
}

/// The error body for every status but 422.
#[derive(Debug, Serialize, ToSchema)]
pub struct HttpErrorOut {
    pub code: String,
    pub detail: String,
}

/// The 422 body.
#[derive(Debug, Serialize, ToSchema)]
pub struct HttpValidationError {
    pub detail: Vec<ValidationItem>,
}

impl ApiError {
    /// A single 422 problem.
    pub fn invalid(loc: &[&str], msg: impl Into<String>) -> Self {
        ApiError::Validation(vec![ValidationItem::new(loc, msg, "value_error")])
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_)
            | ApiError::TooManyConnections
            | ApiError::TooManyPendingMessages(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RequestTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) | ApiError::SecretUnreadable(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The JSON body this error is answered with.
    pub fn body(&self) -> serde_json::Value {
        let body = match self {
            ApiError::Validation(items) => serde_json::to_value(HttpValidationError {
                detail: items.clone(),
            }),
            ApiError::Unavailable(_) => serde_json::to_value(HttpErrorOut {
                code: self.code().into(),
                detail: "the store is temporarily unavailable; retry later".into(),
            }),
            ApiError::Internal(_) => serde_json::to_value(HttpErrorOut {
                code: self.code().into(),
                detail: "internal server error".into(),
            }),
            other => serde_json::to_value(HttpErrorOut {
                code: other.code().into(),
                detail: other.to_string(),
            }),
        };
        body.unwrap_or_default()
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Unauthorized(_) => "authentication_failed",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Validation(_) => "validation",
            ApiError::BodyTimeout(_) => "request_timeout",
            ApiError::Unavailable(_)
            | ApiError::TooManyConnections
            | ApiError::TooManyPendingMessages(_) => "service_unavailable",
            ApiError::RequestTimeout(_) => "store_timeout",
            ApiError::Internal(_) => "internal_error",
            ApiError::SecretUnreadable(_) => "secret_unreadable",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            StoreError::Conflict(c) => ApiError::Conflict(c.to_string()),
            e @ StoreError::KeyTaken(_) => ApiError::Conflict(e.to_string()),
            e @ StoreError::Sealed(_) => ApiError::SecretUnreadable(e.to_string()),
            e if e.is_unavailable() => ApiError::Unavailable(e),
            e => ApiError::Internal(e.into()),
        }
    }
}

/// Marks a response as produced from an error, so the trace middleware can log the cause.
#[derive(Clone)]
pub struct ErrorCause(pub std::sync::Arc<String>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(self.body())).into_response();
        if matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ) {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        if let ApiError::RateLimited(info) = &self {
            info.write(response.headers_mut());
            response
                .headers_mut()
                .insert(RETRY_AFTER, info.retry_after.into());
        }
        if status.is_server_error() {
            let cause = format!("{:#}", anyhow::Error::new(self));
            response.extensions_mut().insert(ErrorCause(cause.into()));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn sqlite(code: i32) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn every_store_error_that_means_later_is_503_with_retry_after() {
        let later = [
            StoreError::Unavailable(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other("ENOSPC"))),
            StoreError::BatchFailed(Arc::new(StoreError::Corrupt("rolled back".into()))),
            sqlite(13), // SQLITE_FULL
            sqlite(10), // SQLITE_IOERR
            sqlite(5),  // SQLITE_BUSY
            sqlite(14), // SQLITE_CANTOPEN
        ];
        for e in later {
            let shown = format!("{e:?}");
            let response = ApiError::from(e).into_response();
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{shown}"
            );
            assert_eq!(response.headers()[RETRY_AFTER], RETRY_AFTER_SECS, "{shown}");
        }
        let response = ApiError::TooManyConnections.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(RETRY_AFTER));
    }

    #[test]
    fn bugs_and_damage_stay_500() {
        for e in [
            StoreError::Corrupt("bad row".into()),
            sqlite(11),
            sqlite(19),
        ] {
            let response = ApiError::from(e).into_response();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert!(!response.headers().contains_key(RETRY_AFTER));
        }
    }
}
