//! A webhook receiver that counts deliveries by `webhook-id` and answers 204; on `/hold` it
//! holds each message's first delivery open until [`Receiver::release_held`]; on `/ordered`
//! it keeps the order deliveries arrived in and how many overlapped, takes 5 ms to answer,
//! and answers 500 to the first delivery of every 7th message.

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
    /// `/ordered`: the message ids in arrival order, requests in progress, the most at once.
    sequence: Arc<Mutex<Vec<String>>>,
    in_progress: Arc<std::sync::atomic::AtomicUsize>,
    most_in_progress: Arc<std::sync::atomic::AtomicUsize>,
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
            .route("/ordered", post(ordered))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr.expect("started"))
    }

    /// The route that records the order of deliveries (see the module docs).
    pub fn ordered_url(&self) -> String {
        format!("http://{}/ordered", self.addr.expect("started"))
    }

    /// What `/ordered` received: message ids in arrival order, and the most requests it
    /// was answering at once.
    pub fn sequence(&self) -> (Vec<String>, usize) {
        (
            self.sequence.lock().unwrap().clone(),
            self.most_in_progress
                .load(std::sync::atomic::Ordering::SeqCst),
        )
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

async fn ordered(State(receiver): State<Receiver>, headers: HeaderMap) -> StatusCode {
    use std::sync::atomic::Ordering;
    let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    let now = receiver.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
    receiver.most_in_progress.fetch_max(now, Ordering::SeqCst);
    let fail = {
        let mut sequence = receiver.sequence.lock().unwrap();
        let first = !sequence.iter().any(|s| s == id);
        sequence.push(id.to_owned());
        let distinct = if first {
            sequence
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
        } else {
            0
        };
        first && distinct % 7 == 0
    };
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    receiver.in_progress.fetch_sub(1, Ordering::SeqCst);
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}
