//! A webhook receiver that counts deliveries by `webhook-id` and answers 204.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

#[derive(Clone, Default)]
pub struct Receiver {
    pub addr: Option<SocketAddr>,
    counts: Arc<Mutex<HashMap<String, u32>>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Receiver {
    /// Starts on a free port of 127.0.0.1, on the test's runtime.
    pub async fn start() -> Receiver {
        let mut receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        receiver.addr = Some(listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hook", post(record))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr.expect("started"))
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
