//! Slow, idle and too many connections: each is closed within its configured time, a body
//! declared too large is refused before it is sent, and health checks get in at the cap.
//! Every client here talks to the server under test on 127.0.0.1 and stops by itself.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

/// How long past a timeout the server may take to close (timer granularity, a busy machine).
const SLACK: Duration = Duration::from_millis(1500);

async fn app_with_timeouts(header: u64, body: u64, idle: u64) -> TestApp {
    TestApp::builder()
        .with_config(move |c| {
            c.header_read_timeout_secs = header;
            c.body_read_timeout_secs = body;
            c.idle_timeout_secs = idle;
        })
        .spawn()
        .await
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Instant) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("the server kept the connection open");
    (
        String::from_utf8_lossy(&received).into_owned(),
        Instant::now(),
    )
}

/// Reads one response head (and a body of `Content-Length`), leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before a response");
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if received.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// A timeout must not cut a client off before it is due.
#[track_caller]
fn assert_not_before(elapsed: Duration, due: Duration) {
    assert!(
        elapsed >= due,
        "acted after {elapsed:?}, before the {due:?} due"
    );
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let app = app_with_timeouts(1, 60, 60).await;
    let opened = Instant::now();
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let (sent, closed) = read_until_closed(&mut stream, Duration::from_secs(1) + SLACK).await;
    let held = closed - opened;
    eprintln!("silent connection closed after {held:?}");
    assert!(sent.is_empty(), "{sent}");
    assert_not_before(held, Duration::from_millis(900));
}

#[tokio::test]
async fn a_head_sent_one_byte_a_second_is_cut_off_at_the_header_timeout() {
    let app = app_with_timeouts(2, 60, 60).await;
    let opened = Instant::now();
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let drip = tokio::spawn(async move {
        for byte in b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n" {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(2) + SLACK, reader.read(&mut buf));
    let n = read
        .await
        .expect("the slow head was not cut off")
        .unwrap_or(0);
    let held = opened.elapsed();
    drip.abort();
    eprintln!("head at 1 byte/s cut off after {held:?}");
    assert_eq!(n, 0, "answered a head that never completed");
    assert_not_before(held, Duration::from_millis(1900));
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout_not_the_header_one() {
    let app = app_with_timeouts(1, 60, 3).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET /api/v1/health/ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut stream).await;
        assert_eq!(status_of(&response), 204, "{response}");
    }
    let idle_from = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(3) + SLACK).await;
    let idle = closed - idle_from;
    eprintln!("idle kept-alive connection closed after {idle:?}");
    assert_not_before(idle, Duration::from_millis(2900));
}

#[tokio::test]
async fn a_body_sent_slowly_is_answered_408_at_the_body_timeout() {
    let app = app_with_timeouts(10, 2, 60).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/app HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"name\": ",
        app.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let drip = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut received = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(2) + SLACK,
        reader.read_to_end(&mut received),
    );
    read.await.expect("the slow body was not cut off").ok();
    let held = started.elapsed();
    drip.abort();
    let response = String::from_utf8_lossy(&received);
    eprintln!("body at 1 byte/s answered and closed after {held:?}");
    assert_eq!(status_of(&response), 408, "{response}");
    assert!(response.contains("\"request_timeout\""), "{response}");
    assert_not_before(held, Duration::from_millis(1900));
    assert!(app.list_all("/api/v1/app").await.is_empty());
}

#[tokio::test]
async fn a_body_declared_above_the_limit_is_refused_before_it_is_read() {
    let app = TestApp::builder()
        .with_config(|c| c.max_payload_bytes = 1000)
        .spawn()
        .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/app/x/msg HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n{{\"a\": 1}}",
        app.token
    );
    let sent = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(2)).await;
    eprintln!(
        "50 MB declared: answered and closed after {:?}",
        closed - sent
    );
    assert_eq!(status_of(&response), 413, "{response}");
    let body: Value = serde_json::from_str(&response[response.find("\r\n\r\n").unwrap() + 4..])
        .expect("a JSON error body");
    assert_eq!(body["code"], "payload_too_large", "{body}");
}

#[tokio::test]
async fn health_answers_with_2000_idle_connections_open() {
    const IDLE: usize = 2000;
    const CAP: usize = 1000;
    let app = TestApp::builder()
        .with_config(|c| {
            c.max_connections = CAP;
            c.reserved_connections = 8;
            c.header_read_timeout_secs = 60;
        })
        .spawn()
        .await;
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(app.addr).await.expect("connect"));
    }
    // Let the server accept (and, past the cap, close) all of them.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut latencies = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/health", app.base_url()))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("the health check got no answer");
        latencies.push(started.elapsed());
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    latencies.sort();
    eprintln!(
        "health with {IDLE} idle connections open (cap {CAP}): median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );

    // A reserved connection serves health checks only.
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/app", app.base_url()))
        .bearer_auth(&app.token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("no answer on a reserved connection");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));

    // Once the idle connections go, the API answers again.
    drop(idle);
    crate::helpers::eventually(
        "the API to answer after the idle connections closed",
        || async {
            let (status, _) = app.get("/api/v1/app").await;
            (status == StatusCode::OK).then_some(())
        },
    )
    .await;
}
