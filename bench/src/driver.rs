//! The sending side: posts messages (or puts entity snapshots) to hookd's API over a fixed
//! set of keep-alive connections, either as fast as they go (closed loop) or on a schedule
//! (open loop).
//!
//! In open loop each message carries its *scheduled* send time, so time spent queued behind
//! a slow server counts as latency (no coordinated omission).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

use crate::{now_micros, procfs};

#[derive(Debug, Clone)]
pub enum Mode {
    /// Send `messages` messages as fast as the connections allow.
    Closed { messages: u64 },
    /// Send `rate` messages per second for `duration`.
    Open { rate: f64, duration: Duration },
}

/// What each request is.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `POST /api/v1/app/{app}/msg`, answered 202.
    Messages,
    /// `PUT /api/v1/app/{app}/entity/product/k{seq % keys}`, answered 200. Every snapshot
    /// changes the state (`seq`); every `fire_every`-th snapshot of a key also raises its
    /// `price` by at least 5 %, which fires the bench's `price.changed` threshold rule (1 %).
    Snapshots { keys: u64, fire_every: u64 },
}

#[derive(Debug, Clone)]
pub struct Load {
    pub kind: Kind,
    /// The nodes to send to: connection `i` goes to `addrs[i % addrs.len()]`.
    pub addrs: Vec<SocketAddr>,
    pub token: String,
    /// Message `seq` goes to `apps[seq % apps.len()]`.
    pub apps: Vec<String>,
    pub mode: Mode,
    pub connections: usize,
    /// Bytes of padding in each payload.
    pub pad: usize,
    /// A new `idempotency-key` on every POST, as the Svix SDKs send.
    pub idempotency_keys: bool,
    /// Set by the caller to end an open loop early (the messages scheduled so far are still
    /// sent); never set, the loop runs its whole duration.
    pub stop: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Default)]
pub struct Sent {
    pub sent: u64,
    pub accepted: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Snapshots whose answer lists events (fired a rule).
    pub fired: u64,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    pub start_micros: u64,
    pub cpu: Duration,
    /// Each answered request's `seq` and its ingest latency (µs): from its send time (in
    /// open loop, its scheduled time) to the answer.
    pub answered: Vec<(u64, u64)>,
}

impl Sent {
    /// The ingest latencies (µs) of every answered request.
    pub fn ingest_micros(&self) -> Vec<u64> {
        self.answered.iter().map(|&(_, micros)| micros).collect()
    }

    /// The worst ingest latency (ms) of the requests scheduled in each second of an open loop
    /// at `rate`.
    pub fn ingest_worst_by_second(&self, rate: f64) -> Vec<f64> {
        let per_second = (rate as u64).max(1);
        let mut worst: Vec<u64> = Vec::new();
        for &(seq, micros) in &self.answered {
            let second = usize::try_from(seq / per_second).unwrap_or(usize::MAX);
            if worst.len() <= second {
                worst.resize(second + 1, 0);
            }
            worst[second] = worst[second].max(micros);
        }
        worst
            .into_iter()
            .map(|w| (w as f64 / 100.0).round() / 10.0)
            .collect()
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    errors: AtomicU64,
    fired: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
    answered: std::sync::Mutex<Vec<(u64, u64)>>,
}

/// Runs the load on a dedicated thread with a single-threaded runtime, and returns once every
/// message was answered.
pub fn run(load: Load) -> anyhow::Result<Sent> {
    std::thread::Builder::new()
        .name("driver".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let cpu_before = procfs::thread_cpu(&procfs::thread_id()).unwrap_or_default();
            let mut sent = runtime.block_on(drive(load));
            let cpu_after = procfs::thread_cpu(&procfs::thread_id()).unwrap_or_default();
            sent.cpu = cpu_after.saturating_sub(cpu_before);
            Ok(sent)
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("the driver thread panicked"))?
}

async fn drive(load: Load) -> Sent {
    let counters = Arc::new(Counters::default());
    let load = Arc::new(load);
    let start_micros = now_micros();
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<(u64, u64)>(1 << 16);
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = Vec::new();
    for i in 0..load.connections.max(1) {
        let addr = load.addrs[i % load.addrs.len()];
        workers.push(tokio::spawn(worker(
            load.clone(),
            addr,
            rx.clone(),
            counters.clone(),
        )));
    }
    match load.mode {
        Mode::Closed { messages } => {
            for seq in 0..messages {
                // In closed loop the send time is when a connection takes the message.
                if tx.send((seq, 0)).await.is_err() {
                    break;
                }
            }
        }
        Mode::Open { rate, duration } => {
            let total = (rate * duration.as_secs_f64()) as u64;
            let step = 1.0 / rate;
            for seq in 0..total {
                if load.stop.load(Ordering::Relaxed) {
                    break;
                }
                let at = started + Duration::from_secs_f64(step * seq as f64);
                tokio::time::sleep_until(at.into()).await;
                let scheduled = start_micros + (step * seq as f64 * 1e6) as u64;
                if tx.send((seq, scheduled)).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    let first_error = counters.first_error.lock().ok().and_then(|e| e.clone());
    Sent {
        sent: counters.sent.load(Ordering::Relaxed),
        accepted: counters.accepted.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        fired: counters.fired.load(Ordering::Relaxed),
        first_error,
        elapsed: started.elapsed(),
        start_micros,
        cpu: Duration::ZERO,
        answered: counters
            .answered
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default(),
    }
}

type Connection = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Connection> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn worker(
    load: Arc<Load>,
    addr: SocketAddr,
    queue: Arc<Mutex<mpsc::Receiver<(u64, u64)>>>,
    counters: Arc<Counters>,
) {
    let pad = "x".repeat(load.pad);
    let auth = format!("Bearer {}", load.token);
    // Unique per run and message: the SDKs' keys are `auto_` and a random UUID.
    let nonce = now_micros();
    let mut connection: Option<Connection> = None;
    loop {
        let next = queue.lock().await.recv().await;
        let Some((seq, scheduled)) = next else { return };
        let sent = if scheduled == 0 {
            now_micros()
        } else {
            scheduled
        };
        let app = &load.apps[(seq % load.apps.len() as u64) as usize];
        let (method, uri, body, ok) = match load.kind {
            Kind::Messages => (
                Method::POST,
                format!("/api/v1/app/{app}/msg"),
                format!(
                    r#"{{"eventType":"bench.event","payload":{{"seq":{seq},"sent":{sent},"pad":"{pad}"}}}}"#
                ),
                202,
            ),
            Kind::Snapshots { keys, fire_every } => {
                let (key, nth) = (seq % keys, seq / keys);
                let price = 100 + 5 * ((nth + 1) / fire_every.max(1));
                (
                    Method::PUT,
                    format!("/api/v1/app/{app}/entity/product/k{key}"),
                    format!(r#"{{"price":{price},"currency":"EUR","seq":{seq},"pad":"{pad}"}}"#),
                    200,
                )
            }
        };
        counters.sent.fetch_add(1, Ordering::Relaxed);
        let key = (load.idempotency_keys && method == Method::POST)
            .then(|| format!("auto_{nonce:016x}-{:04x}-{seq:012x}", addr.port()));
        let outcome = send(&mut connection, addr, method, &uri, &auth, key, body).await;
        if let Ok(mut answered) = counters.answered.lock() {
            answered.push((seq, now_micros().saturating_sub(sent)));
        }
        match outcome {
            Ok((status, answer)) if status == ok => {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                let fired = matches!(load.kind, Kind::Snapshots { .. })
                    && answer.windows(11).any(|w| w == br#""eventType""#);
                if fired {
                    counters.fired.fetch_add(1, Ordering::Relaxed);
                }
            }
            other => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = counters.first_error.lock() {
                    first.get_or_insert_with(|| format!("{other:?}"));
                }
            }
        }
    }
}

async fn send(
    connection: &mut Option<Connection>,
    addr: SocketAddr,
    method: Method,
    uri: &str,
    auth: &str,
    idempotency_key: Option<String>,
    body: String,
) -> anyhow::Result<(u16, Bytes)> {
    if connection.as_ref().is_none_or(|c| c.is_closed()) {
        *connection = Some(connect(addr).await?);
    }
    let Some(sender) = connection.as_mut() else {
        anyhow::bail!("no connection");
    };
    sender.ready().await?;
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", addr.to_string())
        .header("authorization", auth)
        .header("content-type", "application/json");
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
