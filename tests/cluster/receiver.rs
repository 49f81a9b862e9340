//! A webhook receiver that counts deliveries by `webhook-id` and answers 204; on `/hold` it
//! holds each message's first delivery open until [`Receiver::release_held`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

#[derive(Clone, Default)]
pub struct Receiver {
    pub addr: Option<SocketAddr>,
    counts: Arc<Mutex<HashMap<String, u32>>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    /// When each message's deliveries arrived, by message id.
    timeline: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    released: CancellationToken,
}

impl Receiver {
    /// Starts on a free port of 127.0.0.1, on the test's runtime.
    pub async fn start() -> Receiver {
        let mut receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        receiver.addr = Some(listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hook", post(record))
            .route("/hold", post(hold))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr.expect("started"))
    }

    /// The route that holds each message's first delivery open until released.
    pub fn hold_url(&self) -> String {
        format!("http://{}/hold", self.addr.expect("started"))
    }

    /// Answers the held deliveries (500), and every later first delivery at once.
    pub fn release_held(&self) {
        self.released.cancel();
    }

    /// When the deliveries of message `id` arrived, in order.
    pub fn timeline(&self, id: &str) -> Vec<Instant> {
        self.timeline
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// Deliveries received so far, by message id.
    pub fn counts(&self) -> HashMap<String, u32> {
        self.counts.lock().unwrap().clone()
    }

    /// When each delivery arrived, in order.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }

    pub fn distinct(&self) -> usize {
        self.counts.lock().unwrap().len()
    }
}

async fn record(State(receiver): State<Receiver>, headers: HeaderMap) -> StatusCode {
    let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    receiver.arrivals.lock().unwrap().push(Instant::now());
    *receiver
        .counts
        .lock()
        .unwrap()
        .entry(id.to_owned())
        .or_default() += 1;
    StatusCode::NO_CONTENT
}

/// The first delivery of each message is held open until released, then answered 500; later
/// ones are answered 204 at once.
async fn hold(State(receiver): State<Receiver>, headers: HeaderMap) -> StatusCode {
    let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    let first = {
        let mut timeline = receiver.timeline.lock().unwrap();
        let arrivals = timeline.entry(id.to_owned()).or_default();
        arrivals.push(Instant::now());
        arrivals.len() == 1
    };
    if !first {
        return StatusCode::NO_CONTENT;
    }
    receiver.released.cancelled().await;
    StatusCode::INTERNAL_SERVER_ERROR
}
