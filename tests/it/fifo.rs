//! FIFO endpoints (`ordering: "fifo"`, README "FIFO endpoints"): one delivery at a time, in
//! message order, across retries, a head that fails for good, restarts, resends, scheduled
//! messages, disabling and switching back to concurrent. (Across several nodes:
//! `tests/cluster`.)

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_validation_error, eventually};
use crate::receiver::{Receiver, Reply};

/// A server delivering to loopback whose retries come 1 s apart, twice (three attempts).
async fn server() -> TestApp {
    TestApp::builder()
        .delivering_to_loopback()
        .with_config(|c| {
            c.retry_schedule = vec![1, 1];
            c.retry_jitter = 0.0;
        })
        .spawn()
        .await
}

/// An application with one endpoint on `path` with `extra` fields; (app id, endpoint id).
async fn endpoint(
    app: &TestApp,
    receiver: &Receiver,
    path: &str,
    extra: Value,
) -> (String, String) {
    let app_id = app.create_app(json!({"name": "fifo"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut body = json!({"url": receiver.url(path)});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let created = app.create_endpoint(&app_id, body).await;
    (
        app_id,
        created["id"].as_str().expect("an endpoint").to_owned(),
    )
}

/// Sends `n` messages one after the other; their ids in the order they were accepted.
async fn send(app: &TestApp, app_id: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let msg = app
            .create_message(app_id, json!({"eventType": "t", "payload": {"i": i}}))
            .await;
        ids.push(msg["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// The message ids of what `path` received, in arrival order.
fn arrivals(receiver: &Receiver, path: &str) -> Vec<String> {
    receiver
        .requests(path)
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect()
}

/// `ids` with each run of repeats (the attempts of one delivery) made one.
fn runs(ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if out.last() != Some(id) {
            out.push(id.clone());
        }
    }
    out
}

#[tokio::test]
async fn a_fifo_endpoint_gets_one_delivery_at_a_time_in_message_order() {
    let app = server().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/fifo", Reply::status(200).after(Duration::from_millis(20)));
    let (app_id, endpoint_id) =
        endpoint(&app, &receiver, "/fifo", json!({"ordering": "fifo"})).await;
    let (_, got) = app
        .get(&format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}"))
        .await;
    assert_eq!(got["ordering"], "fifo");

    // Sent concurrently, in a batch and one by one: the order is the order of acceptance.
    let sent = send(&app, &app_id, 10).await;
    let (status, batch) = app
        .post(
            &format!("/api/v1/app/{app_id}/msg/batch"),
            Some(json!({"messages": (10..20)
                .map(|i| json!({"eventType": "t", "payload": {"i": i}}))
                .collect::<Vec<_>>()})),
        )
        .await;
    assert!(status.is_success(), "{status} {batch}");
    let mut sent = sent;
    sent.extend(
        batch["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["message"]["id"].as_str().unwrap().to_owned()),
    );
    receiver.wait_for("/fifo", 20).await;
    assert_eq!(arrivals(&receiver, "/fifo"), sent);
    assert_eq!(receiver.most_concurrent(), 1);
}

/// The same traffic to a concurrent endpoint overlaps: the check above can fail.
#[tokio::test]
async fn a_concurrent_endpoint_gets_deliveries_at_once() {
    let app = server().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/c", Reply::status(200).after(Duration::from_millis(200)));
    let (app_id, endpoint_id) = endpoint(&app, &receiver, "/c", json!({})).await;
    let (_, got) = app
        .get(&format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}"))
        .await;
    assert_eq!(got["ordering"], "concurrent");
    send(&app, &app_id, 10).await;
    receiver.wait_for("/c", 10).await;
    assert!(receiver.most_concurrent() > 1);
}

#[tokio::test]
async fn a_failing_head_holds_the_line_until_it_succeeds_or_fails_for_good() {
    let app = server().await;
    let receiver = Receiver::start().await;
    // The first message fails once then succeeds; the second fails all three attempts.
    receiver.script(
        "/fifo",
        [
            Reply::status(500),
            Reply::status(200),
            Reply::status(503),
            Reply::status(500),
            Reply::status(500),
        ],
    );
    let (app_id, _) = endpoint(&app, &receiver, "/fifo", json!({"ordering": "fifo"})).await;
    let sent = send(&app, &app_id, 5).await;
    receiver.wait_for("/fifo", 8).await;
    let expected = [0, 0, 1, 1, 1, 2, 3, 4].map(|i| sent[i].clone());
    assert_eq!(arrivals(&receiver, "/fifo"), expected);
    let (_, state) = app
        .get(&format!("/api/v1/app/{app_id}/msg/{}/endpoint", sent[1]))
        .await;
    assert_eq!(state["data"][0]["statusText"], "fail");
    // Nothing more: each went once it was its turn.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.requests("/fifo").len(), 8);
}

#[tokio::test]
async fn the_order_holds_across_a_restart() {
    let mut app = server().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/fifo", Reply::status(200).after(Duration::from_millis(50)));
    let (app_id, _) = endpoint(&app, &receiver, "/fifo", json!({"ordering": "fifo"})).await;
    let sent = send(&app, &app_id, 30).await;
    receiver.wait_for("/fifo", 3).await;
    app.restart().await;
    let more = send(&app, &app_id, 5).await;
    let all: Vec<String> = sent.iter().chain(&more).cloned().collect();
    eventually("every message delivered", || async {
        (runs(&arrivals(&receiver, "/fifo")).len() >= all.len()).then_some(())
    })
    .await;
    // At least once: the delivery in flight at the restart may arrive twice, in its turn.
    assert_eq!(runs(&arrivals(&receiver, "/fifo")), all);
    assert_eq!(receiver.most_concurrent(), 1);
}

#[tokio::test]
async fn resent_and_scheduled_deliveries_join_the_line() {
    let app = server().await;
    let receiver = Receiver::start().await;
    let (app_id, endpoint_id) =
        endpoint(&app, &receiver, "/fifo", json!({"ordering": "fifo"})).await;
    let first = send(&app, &app_id, 2).await;
    receiver.wait_for("/fifo", 2).await;

    // Held: the next two wait behind a head that is being retried.
    receiver.script("/fifo", [Reply::status(500)]);
    let soon = (Utc::now() + TimeDelta::milliseconds(1500)).to_rfc3339();
    let scheduled = app
        .create_message(
            &app_id,
            json!({"eventType": "t", "payload": {}, "deliverAt": soon}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let later = send(&app, &app_id, 2).await;
    let (status, _) = app
        .post(
            &format!(
                "/api/v1/app/{app_id}/msg/{}/endpoint/{endpoint_id}/resend",
                first[0]
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    receiver.wait_for("/fifo", 7).await;
    let got = arrivals(&receiver, "/fifo");
    // later[0] fails and is retried a second later: the resend waits for it, then goes
    // in its own place by queue order (first[0] was queued before later[1]); the scheduled
    // message joins when it comes due, behind what was in line then.
    assert_eq!(
        got[..4],
        [
            first[0].clone(),
            first[1].clone(),
            later[0].clone(),
            later[0].clone()
        ]
    );
    assert_eq!(
        got[4..].iter().filter(|id| **id == scheduled).count(),
        1,
        "{got:?}"
    );
    let rest: Vec<&String> = got[4..].iter().filter(|id| **id != scheduled).collect();
    assert_eq!(rest, [&first[0], &later[1]]);
    assert_eq!(receiver.most_concurrent(), 1);
}

#[tokio::test]
async fn disabling_keeps_the_line_and_switching_to_concurrent_releases_it() {
    let app = server().await;
    let receiver = Receiver::start().await;
    receiver.default_reply(
        "/fifo",
        Reply::status(200).after(Duration::from_millis(100)),
    );
    let (app_id, endpoint_id) = endpoint(
        &app,
        &receiver,
        "/fifo",
        json!({"ordering": "fifo", "disabled": true}),
    )
    .await;
    // Made while disabled: no deliveries. Enabled: a line forms from what comes next.
    let path = format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}");
    let (status, _) = app.patch(&path, Some(json!({"disabled": false}))).await;
    assert_eq!(status, StatusCode::OK);
    let sent = send(&app, &app_id, 6).await;
    receiver.wait_for("/fifo", 1).await;
    let (status, _) = app.patch(&path, Some(json!({"disabled": true}))).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = receiver.requests("/fifo").len();
    assert!(before < 6, "a disabled endpoint kept receiving");
    let (status, _) = app.patch(&path, Some(json!({"disabled": false}))).await;
    assert_eq!(status, StatusCode::OK);
    receiver.wait_for("/fifo", before + 1).await;
    // Concurrent again: the rest are released at once.
    let (status, got) = app.patch(&path, Some(json!({"ordering": null}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["ordering"], "concurrent");
    receiver.wait_for("/fifo", 6).await;
    let delivered = arrivals(&receiver, "/fifo");
    for id in &sent {
        assert!(delivered.contains(id), "{id} was not delivered");
    }
}

#[tokio::test]
async fn an_unknown_ordering_is_refused() {
    let app = server().await;
    let receiver = Receiver::start().await;
    let (app_id, endpoint_id) = endpoint(&app, &receiver, "/x", json!({})).await;
    let body = json!({"url": receiver.url("/x"), "ordering": "lifo"});
    let (status, err) = app
        .post(&format!("/api/v1/app/{app_id}/endpoint"), Some(body))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_validation_error(&err, &["body", "ordering"]);
    let (status, err) = app
        .patch(
            &format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
            Some(json!({"ordering": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_validation_error(&err, &["body", "ordering"]);
}
