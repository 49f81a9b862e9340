//! `throttleRate` on endpoints and applications: deliveries wait for their turn, none fails
//! for it, and other endpoints are not slowed. (Several nodes on PostgreSQL: `tests/cluster`.)

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{TestApp, eventually};
use crate::receiver::Receiver;

/// The most requests that arrived within any one second.
fn most_in_a_second(arrivals: &[Instant]) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|t| t.duration_since(sorted[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn throttled_app(app: &TestApp, body: serde_json::Value) -> String {
    app.create_app(body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Sends `n` messages to `app_id` at once; returns when they were all accepted.
async fn send(app: &TestApp, app_id: &str, n: usize) -> Instant {
    let sent = Instant::now();
    futures::future::join_all(
        (0..n).map(|i| app.create_message(app_id, json!({"eventType": "a", "payload": {"i": i}}))),
    )
    .await;
    sent
}

/// Every attempt of the application's messages succeeded at the first try.
async fn none_failed(app: &TestApp, app_id: &str, endpoint_id: &str, n: u64) {
    eventually("every delivery recorded as a success", || async {
        let (_, stats) = app
            .get(&format!(
                "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats"
            ))
            .await;
        (stats["success"] == json!(n)).then_some(())
    })
    .await;
    let (_, stats) = app
        .get(&format!(
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats"
        ))
        .await;
    assert_eq!(stats["fail"], json!(0), "{stats}");
}

#[tokio::test]
async fn a_throttled_endpoint_gets_its_rate_and_others_are_not_slowed() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let app_id = throttled_app(&app, json!({"name": "t"})).await;
    let slow = app
        .create_endpoint(
            &app_id,
            json!({"url": receiver.url("/slow"), "throttleRate": 20}),
        )
        .await;
    app.create_endpoint(&app_id, json!({"url": receiver.url("/fast")}))
        .await;
    let sent = send(&app, &app_id, 60).await;
    let fast = receiver.wait_for("/fast", 60).await;
    let got = receiver.wait_for("/slow", 60).await;
    let elapsed = got.iter().map(|r| r.at).max().unwrap() - sent;
    // A full bucket (20) at once, then 40 more at 20 a second.
    assert!(
        elapsed >= Duration::from_millis(1900),
        "60 at 20/s took {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(6),
        "60 at 20/s took {elapsed:?}"
    );
    let arrivals: Vec<Instant> = got.iter().map(|r| r.at).collect();
    // The bucket and one second's refill (40), and a little for the jitter between starting
    // a delivery and its arrival.
    assert!(
        most_in_a_second(&arrivals) <= 44,
        "{}",
        most_in_a_second(&arrivals)
    );
    let fast_done = fast.iter().map(|r| r.at).max().unwrap() - sent;
    assert!(
        fast_done < elapsed / 2,
        "the unthrottled endpoint took {fast_done:?}"
    );
    none_failed(&app, &app_id, slow["id"].as_str().unwrap(), 60).await;
    println!("throttleRate 20/s, 60 deliveries: {elapsed:?} (unthrottled: {fast_done:?})");
}

#[tokio::test]
async fn an_application_rate_holds_for_all_its_endpoints_together() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let app_id = throttled_app(&app, json!({"name": "t", "throttleRate": 20})).await;
    let a = app
        .create_endpoint(&app_id, json!({"url": receiver.url("/a")}))
        .await;
    app.create_endpoint(&app_id, json!({"url": receiver.url("/b")}))
        .await;
    let other = throttled_app(&app, json!({"name": "other"})).await;
    app.create_endpoint(&other, json!({"url": receiver.url("/other")}))
        .await;
    let sent = send(&app, &app_id, 30).await;
    send(&app, &other, 30).await;
    let other_got = receiver.wait_for("/other", 30).await;
    let mut got = receiver.wait_for("/a", 30).await;
    got.extend(receiver.wait_for("/b", 30).await);
    let elapsed = got.iter().map(|r| r.at).max().unwrap() - sent;
    assert!(
        elapsed >= Duration::from_millis(1900),
        "60 at 20/s took {elapsed:?}"
    );
    let arrivals: Vec<Instant> = got.iter().map(|r| r.at).collect();
    // As above, with room for deliveries started a moment apart and arriving together on a
    // loaded machine (seen: 46); unthrottled, all 60 would arrive within the second.
    assert!(
        most_in_a_second(&arrivals) <= 48,
        "{}",
        most_in_a_second(&arrivals)
    );
    let other_done = other_got.iter().map(|r| r.at).max().unwrap() - sent;
    assert!(
        other_done < elapsed / 2,
        "another application took {other_done:?}"
    );
    none_failed(&app, &app_id, a["id"].as_str().unwrap(), 30).await;
}
