//! The receiving side: a lean HTTP/1.1 server that answers deliveries and notes, for each
//! (message, endpoint) slot, when its first successful delivery arrived.
//!
//! Payloads start with `{"seq":N,"sent":MICROS`, written by the driver, so the receiver learns
//! the message and its send time without a JSON parser. The endpoint's index within its
//! application is the last path segment; paths under `/slow/` answer after a delay.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::now_micros;

#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Messages with `seq % fail_every == 0` get a 500 on their first delivery (0: never).
    pub fail_every: u64,
    /// How long `/slow/...` endpoints take to answer.
    pub slow_delay: Duration,
    /// Answer every request with `Connection: close`, as receivers that speak HTTP/1.0 or
    /// close after each request do: hookd then connects anew for every delivery.
    pub close_connections: bool,
}

/// What arrived, slot by slot (`seq * fanout + endpoint index`).
pub struct Tally {
    fanout: u64,
    /// Latency of the first successful delivery, in µs + 1 (0: not delivered yet).
    latency: Vec<AtomicU64>,
    /// Requests seen per slot, to tell first attempts from retries and duplicates.
    seen: Vec<AtomicU32>,
    pub requests: AtomicU64,
    pub duplicates: AtomicU64,
    pub failed_on_purpose: AtomicU64,
    /// When the last successful delivery arrived (µs since the epoch).
    pub last_delivery: AtomicU64,
    /// When the last slot got its first request, successful or not (µs since the epoch).
    pub last_first_attempt: AtomicU64,
    pub first_attempts: AtomicU64,
    pub delivered: AtomicU64,
}

impl Tally {
    pub fn new(messages: u64, fanout: u64) -> Self {
        let slots = usize::try_from(messages * fanout).expect("slot count fits in memory");
        Self {
            fanout,
            latency: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            seen: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            requests: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            failed_on_purpose: AtomicU64::new(0),
            last_delivery: AtomicU64::new(0),
            last_first_attempt: AtomicU64::new(0),
            first_attempts: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        }
    }

    /// Latencies (µs) of delivered slots for which `keep(slot)` holds.
    pub fn latencies(&self, keep: impl Fn(usize) -> bool) -> Vec<u64> {
        self.latency
            .iter()
            .enumerate()
            .filter(|(slot, _)| keep(*slot))
            .filter_map(|(_, l)| match l.load(Ordering::Relaxed) {
                0 => None,
                v => Some(v - 1),
            })
            .collect()
    }

    /// The worst latency (ms) in each run of `window` consecutive slots, undelivered slots
    /// left out. In open loop a window of `rate × fanout` slots is one second of sending, so
    /// this shows when during a run the tail happened.
    pub fn worst_by_window(&self, window: usize) -> Vec<f64> {
        self.latency
            .chunks(window.max(1))
            .map(|chunk| {
                let worst = chunk
                    .iter()
                    .map(|l| l.load(Ordering::Relaxed).saturating_sub(1))
                    .max()
                    .unwrap_or(0);
                (worst as f64 / 100.0).round() / 10.0
            })
            .collect()
    }
}

/// Starts the receiver on its own thread and single-threaded runtime, so its CPU time can be
/// told apart from the driver's. Returns its address and the thread's id (for /proc).
pub fn start(tally: Arc<Tally>, behaviour: Behaviour) -> anyhow::Result<(SocketAddr, String)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("receiver".into())
        .spawn(move || {
            let _ = tid_tx.send(crate::procfs::thread_id());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            runtime.block_on(serve(listener, tally, behaviour));
        })?;
    Ok((addr, tid_rx.recv()?))
}

async fn serve(listener: std::net::TcpListener, tally: Arc<Tally>, behaviour: Behaviour) {
    let listener = TcpListener::from_std(listener).expect("receiver listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tally = tally.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, tally.clone(), behaviour));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    tally: Arc<Tally>,
    behaviour: Behaviour,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let slow = req.uri().path().starts_with("/slow/");
    let index: u64 = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let status = match parse_head(&body) {
        Some((seq, sent)) => record(&tally, behaviour, seq, index, sent),
        None => StatusCode::OK,
    };
    if slow {
        tokio::time::sleep(behaviour.slow_delay).await;
    }
    let mut response = Response::builder().status(status);
    if behaviour.close_connections {
        response = response.header("connection", "close");
    }
    Ok(response
        .body(Full::new(Bytes::new()))
        .expect("static response"))
}

fn record(tally: &Tally, behaviour: Behaviour, seq: u64, index: u64, sent: u64) -> StatusCode {
    let slot = seq * tally.fanout + index;
    let Ok(slot) = usize::try_from(slot) else {
        return StatusCode::OK;
    };
    let Some(seen) = tally.seen.get(slot) else {
        return StatusCode::OK;
    };
    let before = seen.fetch_add(1, Ordering::Relaxed);
    let now = now_micros();
    if before == 0 {
        tally.first_attempts.fetch_add(1, Ordering::Relaxed);
        tally.last_first_attempt.fetch_max(now, Ordering::Relaxed);
    }
    if before == 0 && behaviour.fail_every > 0 && seq.is_multiple_of(behaviour.fail_every) {
        tally.failed_on_purpose.fetch_add(1, Ordering::Relaxed);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let latency = now.saturating_sub(sent);
    if tally.latency[slot]
        .compare_exchange(0, latency + 1, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        tally.delivered.fetch_add(1, Ordering::Relaxed);
        tally.last_delivery.fetch_max(now, Ordering::Relaxed);
    } else {
        tally.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::OK
}

/// Reads `{"seq":N,"sent":M` from the start of a payload.
fn parse_head(body: &[u8]) -> Option<(u64, u64)> {
    let rest = body.strip_prefix(br#"{"seq":"#)?;
    let (seq, rest) = number(rest)?;
    let rest = rest.strip_prefix(br#","sent":"#)?;
    let (sent, _) = number(rest)?;
    Some((seq, sent))
}

fn number(s: &[u8]) -> Option<(u64, &[u8])> {
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    let n = std::str::from_utf8(&s[..end]).ok()?.parse().ok()?;
    Some((n, &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_payload_head() {
        assert_eq!(
            parse_head(br#"{"seq":12,"sent":345,"pad":""}"#),
            Some((12, 345))
        );
        assert_eq!(parse_head(br#"{"other":1}"#), None);
    }
}
