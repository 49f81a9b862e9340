//! An in-process webhook receiver: records every request and answers as scripted.
//!
//! Each path has its own queue of scripted replies; when the queue is empty the path's
//! default reply (200 unless set) is used. Tests wait for requests with
//! [`Receiver::wait_for`], which returns as soon as they have arrived (bounded by a deadline
//! that only a broken server reaches).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Waits this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("the delivery has no {name} header"))
    }
}

#[derive(Default)]
struct Recorded {
    requests: HashMap<String, Vec<Received>>,
    scripts: HashMap<String, VecDeque<Reply>>,
    defaults: HashMap<String, Reply>,
}

#[derive(Default)]
struct Shared {
    recorded: Mutex<Recorded>,
    arrived: Notify,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

const WAIT_LIMIT: Duration = Duration::from_secs(20);

impl Receiver {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let router = Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { addr, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replies for the next requests to `path`, in order.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.lock()
            .scripts
            .entry(path.to_owned())
            .or_default()
            .extend(replies);
    }

    /// The reply once the script for `path` is used up.
    pub fn default_reply(&self, path: &str, reply: Reply) {
        self.lock().defaults.insert(path.to_owned(), reply);
    }

    pub fn requests(&self, path: &str) -> Vec<Received> {
        self.lock().requests.get(path).cloned().unwrap_or_default()
    }

    /// Waits until `path` has received at least `n` requests; returns them all.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let arrived = self.shared.arrived.notified();
            let got = self.requests(path);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("{path} received {} requests, expected {n}", got.len());
            }
        }
    }

    /// The most requests the receiver was answering at the same time.
    pub fn most_concurrent(&self) -> usize {
        self.shared.most_in_flight.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.shared.recorded.lock().unwrap()
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared
        .most_in_flight
        .fetch_max(now_in_flight, Ordering::SeqCst);
    let reply = {
        let mut recorded = shared.recorded.lock().unwrap();
        recorded
            .requests
            .entry(path.clone())
            .or_default()
            .push(Received {
                headers,
                body,
                at: std::time::Instant::now(),
            });
        let scripted = recorded
            .scripts
            .get_mut(&path)
            .and_then(VecDeque::pop_front);
        scripted
            .or_else(|| recorded.defaults.get(&path).cloned())
            .unwrap_or_else(|| Reply::status(200))
    };
    shared.arrived.notify_waiters();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}
