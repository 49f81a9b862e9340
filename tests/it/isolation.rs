//! One slow endpoint must not delay deliveries to healthy ones.

use std::time::Duration;

use serde_json::json;

use crate::helpers::TestApp;
use crate::receiver::{Receiver, Reply};

#[tokio::test]
async fn a_slow_endpoint_does_not_hold_up_healthy_ones() {
    let per_endpoint = 2;
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| {
            c.endpoint_concurrency = per_endpoint;
            c.delivery_concurrency = 8;
        })
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    // Long enough that even a loaded machine delivers the fast messages within it.
    receiver.default_reply("/slow", Reply::status(200).after(Duration::from_secs(6)));
    let slow = app.create_app(json!({"name": "slow"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fast = app.create_app(json!({"name": "fast"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_endpoint(&slow, json!({"url": receiver.url("/slow")}))
        .await;
    app.create_endpoint(&fast, json!({"url": receiver.url("/fast")}))
        .await;

    // The slow endpoint's backlog is older, so it is due first.
    for n in 0..20 {
        app.create_message(&slow, json!({"eventType": "a", "payload": {"n": n}}))
            .await;
    }
    for n in 0..20 {
        app.create_message(&fast, json!({"eventType": "a", "payload": {"n": n}}))
            .await;
    }
    receiver.wait_for("/fast", 20).await;
    // Had the fast deliveries waited for a slow slot, the slow endpoint would have answered
    // (6 s) and been sent more by now: it has only had its first `per_endpoint` requests.
    assert_eq!(receiver.requests("/slow").len(), per_endpoint);
}

#[tokio::test]
async fn an_endpoint_never_gets_more_than_its_concurrency() {
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(|c| c.endpoint_concurrency = 3)
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    receiver.default_reply(
        "/busy",
        Reply::status(200).after(Duration::from_millis(200)),
    );
    let app_id = app.create_app(json!({"name": "busy"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_endpoint(&app_id, json!({"url": receiver.url("/busy")}))
        .await;
    for n in 0..30 {
        app.create_message(&app_id, json!({"eventType": "a", "payload": {"n": n}}))
            .await;
    }
    receiver.wait_for("/busy", 30).await;
    assert_eq!(receiver.most_concurrent(), 3);
}
