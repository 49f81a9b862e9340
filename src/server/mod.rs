//! Accepting HTTP connections and serving the API on them, within limits that keep slow,
//! idle or too many clients from holding the server.
//!
//! - A new connection must send a complete request head within `header_read_timeout`, and so
//!   must a kept-alive one once its first byte arrives; a kept-alive connection that sends
//!   nothing for `idle_timeout` is closed (see [`deadline`]). The body's deadline is the
//!   API's (`body_read_timeout`, answered 408).
//! - A `Content-Length` above the body limit is answered 413 as soon as the head is read,
//!   before any of the body is.
//! - At most `max_connections` connections are served. Past that, `reserved_connections` more
//!   are accepted for health checks: on them `/api/v1/health` and `/api/v1/health/ping` are
//!   answered and anything else gets 503 with `Retry-After`, and each is closed after one
//!   response. A connection arriving at a full reserve takes the place of the oldest
//!   reserved one that has sent no request yet (see [`reserve`]); when there is none, it is
//!   closed as soon as it is accepted, so the listener's queue does not fill with clients
//!   waiting for nothing.
//!
//! What this adds to every request: two stores to an atomic, a header lookup, and the clones
//! of two `Arc`s (hyper and axum's own per-request work aside). The per-connection state (a
//! timer, the phase) is allocated once per connection.

mod deadline;
mod reserve;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{CONNECTION, CONTENT_LENGTH};
use http::{HeaderValue, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::api::ApiService;
use crate::api::error::ApiError;
use deadline::{DeadlineStream, Deadlines, Phase};
use reserve::{Reserve, ReservedPlace};

/// After an accept error that is not one connection's (out of file descriptors), wait this
/// long before accepting again rather than spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Refused connections are logged at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// The routes a reserved connection serves.
const HEALTH_PATHS: [&str; 3] = [
    "/api/v1/health",
    "/api/v1/health/ping",
    "/api/v1/health/ready",
];

/// How connections are accepted and how long they may take.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub reserved_connections: usize,
    /// The largest request body accepted: a larger `Content-Length` is refused at once.
    pub max_body_bytes: usize,
}

/// Serves `router` on connections from `listener` until `shutdown`, then lets the requests
/// in progress finish (each connection closes after its current response) and returns.
pub async fn serve(
    listener: TcpListener,
    router: ApiService,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = Arc::new(limits);
    let regular = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Reserve::new(limits.reserved_connections);
    let connections = TaskTracker::new();
    let mut last_refusal_log: Option<tokio::time::Instant> = None;
    for id in 0u64.. {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                }
            }
        };
        let phase = Arc::new(Phase::default());
        let slot = match regular.clone().try_acquire_owned() {
            Ok(permit) => Slot::Regular(permit),
            Err(_) => match reserve.take(id, phase.clone()) {
                Some(place) => Slot::Reserved(place),
                None => {
                    let now = tokio::time::Instant::now();
                    if last_refusal_log.is_none_or(|t| now - t >= REFUSAL_LOG_EVERY) {
                        last_refusal_log = Some(now);
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            reserved_connections = limits.reserved_connections,
                            "too many open connections; closing new ones until some end"
                        );
                    }
                    drop(stream);
                    continue;
                }
            },
        };
        connections.spawn(serve_connection(
            stream,
            phase,
            router.clone(),
            slot,
            limits.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Errors of one connection that was aborted while it was being accepted: accept the next.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// What a connection holds while it is open.
enum Slot {
    Regular(#[expect(dead_code, reason = "held until the connection ends")] OwnedSemaphorePermit),
    /// Beyond `max_connections`: health checks only, one request.
    Reserved(ReservedPlace),
}

async fn serve_connection(
    stream: TcpStream,
    phase: Arc<Phase>,
    router: ApiService,
    slot: Slot,
    limits: Arc<ConnectionLimits>,
    shutdown: CancellationToken,
) {
    let io = TokioIo::new(DeadlineStream::new(stream, phase.clone()));
    let mut deadlines = Deadlines::new(
        phase.clone(),
        limits.header_read_timeout,
        limits.idle_timeout,
    );
    let evicted = match &slot {
        Slot::Regular(_) => None,
        Slot::Reserved(place) => Some(place.evicted.clone()),
    };
    let reserved = evicted.is_some();
    let max_body_bytes = limits.max_body_bytes;
    let service = service_fn(move |request: Request<Incoming>| {
        phase.handling();
        // The router is always ready (its `poll_ready` returns at once), so it is called
        // without asking; the future it returns owns what it needs.
        let outcome = match refuse_early(&request, reserved, max_body_bytes) {
            Some(refused) => Err(refused),
            None => Ok(router.clone().call(request.map(Body::new))),
        };
        let phase = phase.clone();
        async move {
            let mut response = match outcome {
                Ok(routed) => routed.await.unwrap_or_else(|never| match never {}),
                Err(refused) => refused,
            };
            if reserved {
                close_after(&mut response);
            }
            phase.idle();
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The deadlines are ours; hyper's own header timer would also count idle time.
    builder.header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            // The connection first: `deadlines` must see the phase it leaves.
            biased;
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = shutdown.cancelled(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = &mut deadlines => {
                tracing::debug!("closing a connection that was idle or slow to send a request");
                break;
            }
            () = cancelled(evicted.as_ref()) => break,
        }
    }
    drop(slot);
}

/// Resolves when `token` is cancelled; never without one.
async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// The answer to a request that is not routed: anything but a health check on a reserved
/// connection (503), and a body declared larger than the limit (413, before it is read).
fn refuse_early(
    request: &Request<Incoming>,
    reserved: bool,
    max_body_bytes: usize,
) -> Option<Response> {
    let path = request.uri().path();
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    if reserved && !HEALTH_PATHS.contains(&path) {
        return Some(ApiError::TooManyConnections.into_response());
    }
    let declared: u64 = request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    if declared <= max_body_bytes as u64 {
        return None;
    }
    let mut response = ApiError::PayloadTooLarge(format!(
        "the request body is {declared} bytes; the limit is {max_body_bytes} bytes"
    ))
    .into_response();
    // The body will not be read, so the connection cannot carry another request.
    close_after(&mut response);
    Some(response)
}

fn close_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
}
