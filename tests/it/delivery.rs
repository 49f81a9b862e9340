//! Deliveries as a receiver sees them: body, signatures, headers; and each kind of outcome.

use std::time::Duration;

use hookd::domain::SigningSecret;
use hookd::signing;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually};
use crate::receiver::{Receiver, Reply};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// An app with one endpoint at `receiver.url(path)`; returns (app id, endpoint id).
pub async fn app_with_endpoint(app: &TestApp, receiver: &Receiver, path: &str) -> (String, String) {
    let created = app.create_app(json!({"name": "deliveries"})).await;
    let app_id = created["id"].as_str().unwrap().to_owned();
    let endpoint = app
        .create_endpoint(
            &app_id,
            json!({"url": receiver.url(path), "secret": SECRET}),
        )
        .await;
    (app_id, endpoint["id"].as_str().unwrap().to_owned())
}

/// The attempts of a message, newest first, once there are at least `n`.
pub async fn attempts(app: &TestApp, app_id: &str, msg_id: &str, n: usize) -> Vec<Value> {
    eventually("attempts to be recorded", || async {
        let (_, list) = app
            .get(&format!("/api/v1/app/{app_id}/attempt/msg/{msg_id}"))
            .await;
        let data = list["data"].as_array().cloned().unwrap_or_default();
        (data.len() >= n).then_some(data)
    })
    .await
}

/// The message's delivery to its (only) endpoint, once it has left `pending`/`sending`
/// for `status_text`.
pub async fn delivery_state(app: &TestApp, app_id: &str, msg_id: &str, status_text: &str) -> Value {
    eventually(status_text, || async {
        let (_, list) = app
            .get(&format!("/api/v1/app/{app_id}/msg/{msg_id}/endpoint"))
            .await;
        let first = list["data"][0].clone();
        (first["statusText"] == status_text).then_some(first)
    })
    .await
}

#[tokio::test]
async fn a_delivery_is_the_payload_signed_with_standard_webhooks_headers() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, endpoint_id) = app_with_endpoint(&app, &receiver, "/hook").await;
    let (status, _) = app
        .put(
            &format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers"),
            Some(json!({"headers": {"X-Tenant": "acme", "Authorization": "Bearer s3cret"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Odd spacing and unicode: the bytes delivered must be the bytes sent.
    let raw = r#"{"invoice" : "in_1", "amount":  12.50, "note": "héllo ✓"}"#;
    let body = format!(r#"{{"eventType": "invoice.paid", "payload": {raw}}}"#);
    let (status, msg) = crate::helpers::send(
        app.raw_request(reqwest::Method::POST, &format!("/api/v1/app/{app_id}/msg"))
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let msg_id = msg["id"].as_str().unwrap();

    let got = receiver.wait_for("/hook", 1).await;
    let delivery = &got[0];
    assert_eq!(delivery.body, raw.as_bytes());
    assert_eq!(delivery.header("webhook-id"), msg_id);
    assert_eq!(delivery.header("svix-id"), msg_id);
    assert_eq!(delivery.header("content-type"), "application/json");
    assert!(delivery.header("user-agent").starts_with("hookd/"));
    assert_eq!(delivery.header("accept"), "*/*");
    assert_eq!(delivery.header("x-tenant"), "acme");

    let timestamp: i64 = delivery.header("webhook-timestamp").parse().unwrap();
    assert_eq!(delivery.header("svix-timestamp"), timestamp.to_string());
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    let signature = delivery.header("webhook-signature");
    assert_eq!(delivery.header("svix-signature"), signature);
    let secret = SigningSecret::parse(SECRET).unwrap();
    assert!(signing::verify(
        &secret,
        msg_id,
        timestamp,
        &delivery.body,
        signature
    ));
    let other = SigningSecret::generate();
    assert!(!signing::verify(
        &other,
        msg_id,
        timestamp,
        &delivery.body,
        signature
    ));

    let attempt = &attempts(&app, &app_id, msg_id, 1).await[0];
    assert_eq!(attempt["statusText"], "success");
    assert_eq!(attempt["responseStatusCode"], 200);
    assert_eq!(attempt["triggerType"], 0);
    assert_eq!(attempt["endpointId"], endpoint_id.as_str());
    // A successful attempt does not keep the request's headers (a failed one does).
    assert_eq!(attempt["requestHeaders"], json!({}));
    assert_eq!(delivery.header("authorization"), "Bearer s3cret");
    assert!(!attempt.to_string().contains("s3cret"));
    delivery_state(&app, &app_id, msg_id, "success").await;
}

#[tokio::test]
async fn signature_header_names_follow_the_configuration() {
    for (setting, present, absent) in [
        ("webhook", "webhook-signature", "svix-signature"),
        ("svix", "svix-signature", "webhook-signature"),
    ] {
        let app = TestApp::builder()
            .delivering_to_loopback()
            .with_config(move |c| {
                c.signature_headers = serde_json::from_value(json!(setting)).unwrap()
            })
            .spawn()
            .await;
        let receiver = Receiver::start().await;
        let (app_id, _) = app_with_endpoint(&app, &receiver, "/h").await;
        app.create_message(&app_id, json!({"eventType": "a", "payload": {}}))
            .await;
        let got = receiver.wait_for("/h", 1).await;
        assert!(got[0].headers.contains_key(present), "{setting}");
        assert!(!got[0].headers.contains_key(absent), "{setting}");
    }
}

#[tokio::test]
async fn during_a_rotation_grace_period_deliveries_carry_both_signatures() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, endpoint_id) = app_with_endpoint(&app, &receiver, "/r").await;
    let (status, rotated) = app
        .post(
            &format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_secret = SigningSecret::parse(rotated["key"].as_str().unwrap()).unwrap();
    let old_secret = SigningSecret::parse(SECRET).unwrap();

    let msg = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {"n": 1}}))
        .await;
    let got = receiver.wait_for("/r", 1).await;
    let signature = got[0].header("webhook-signature");
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    let ts: i64 = got[0].header("webhook-timestamp").parse().unwrap();
    let id = msg["id"].as_str().unwrap();
    for secret in [&new_secret, &old_secret] {
        assert!(signing::verify(secret, id, ts, &got[0].body, signature));
    }

    // With no grace period the old secret stops signing at once.
    app.post(
        &format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate"),
        Some(json!({"gracePeriodSeconds": 0})),
    )
    .await;
    app.create_message(&app_id, json!({"eventType": "a", "payload": {"n": 2}}))
        .await;
    let got = receiver.wait_for("/r", 2).await;
    let signature = got[1].header("webhook-signature");
    assert_eq!(
        signature.split(' ').count(),
        2,
        "the first rotation's grace still runs"
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_stops_its_deliveries() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/gone", Reply::status(410));
    let (app_id, endpoint_id) = app_with_endpoint(&app, &receiver, "/gone").await;
    let msg = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let msg_id = msg["id"].as_str().unwrap();
    delivery_state(&app, &app_id, msg_id, "fail").await;
    let (_, endpoint) = app
        .get(&format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}"))
        .await;
    assert_eq!(endpoint["disabled"], true);

    // A disabled endpoint receives nothing more; re-enabling it resumes deliveries.
    let later = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    receiver.default_reply("/gone", Reply::status(200));
    app.patch(
        &format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
        Some(json!({"disabled": false})),
    )
    .await;
    let next = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let got = receiver.wait_for("/gone", 2).await;
    assert_eq!(got[1].header("webhook-id"), next["id"].as_str().unwrap());
    assert!(
        got.iter()
            .all(|r| r.header("webhook-id") != later["id"].as_str().unwrap())
    );
}

#[tokio::test]
async fn failures_are_classified_and_recorded() {
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(|c| {
            c.request_timeout_secs = 1;
            c.max_response_body_bytes = 10;
        })
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/slow", Reply::status(200).after(Duration::from_secs(3)));
    receiver.default_reply(
        "/redirect",
        Reply::status(302).header("location", "/elsewhere"),
    );
    receiver.default_reply("/big", Reply::status(500).body("x".repeat(1000)));
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let app_id = app.create_app(json!({"name": "f"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (url, class, code) in [
        (receiver.url("/slow"), "timeout", 0),
        (receiver.url("/redirect"), "http_status", 302),
        (receiver.url("/big"), "http_status", 500),
        (format!("http://{closed}/"), "connect", 0),
        ("http://no-such-host.invalid/".to_owned(), "dns", 0),
        // A TLS handshake with a server that speaks plain HTTP.
        (
            receiver.url("/tls").replace("http://", "https://"),
            "tls",
            0,
        ),
    ] {
        let endpoint = app
            .create_endpoint(
                &app_id,
                json!({"url": url, "headers": {"X-Tenant": "acme", "Authorization": "Bearer s3cret"}}),
            )
            .await;
        let endpoint_id = endpoint["id"].as_str().unwrap();
        let msg = app
            .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
            .await;
        let msg_id = msg["id"].as_str().unwrap();
        let attempt = eventually(class, || async {
            let (_, list) = app
                .get(&format!(
                    "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}"
                ))
                .await;
            list["data"].as_array().and_then(|d| d.first().cloned())
        })
        .await;
        assert_eq!(attempt["msgId"], msg_id);
        assert_eq!(attempt["errorClass"], class, "{url}: {attempt}");
        assert_eq!(attempt["responseStatusCode"], code, "{url}");
        assert_eq!(attempt["statusText"], "fail");
        if code == 500 {
            assert_eq!(attempt["response"], "x".repeat(10), "the body is capped");
        }
        // A failed attempt keeps the headers hookd set on its request, credentials
        // redacted.
        let sent = &attempt["requestHeaders"];
        assert_eq!(sent["webhook-id"], msg_id, "{url}: {attempt}");
        assert!(
            sent["webhook-signature"]
                .as_str()
                .unwrap()
                .starts_with("v1,"),
            "{attempt}"
        );
        assert_eq!(sent["x-tenant"], "acme");
        assert_eq!(sent["authorization"], "[redacted]");
        assert!(!attempt.to_string().contains("s3cret"));
        app.delete(&format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}"))
            .await;
    }
    assert!(
        receiver.requests("/elsewhere").is_empty(),
        "redirects are not followed"
    );
}

#[tokio::test]
async fn endpoints_receive_only_the_event_types_and_channels_they_filter_on() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let app_id = app.create_app(json!({"name": "filters"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, filter) in [
        ("/all", json!({})),
        ("/paid", json!({"eventTypes": ["invoice.paid"]})),
        ("/eu", json!({"channels": ["eu"]})),
        (
            "/paid-eu",
            json!({"eventTypes": ["invoice.paid"], "channels": ["eu"]}),
        ),
    ] {
        let mut body = filter;
        body["url"] = json!(receiver.url(path));
        app.create_endpoint(&app_id, body).await;
    }
    let send = |event_type: &'static str, channels: Value| {
        let app = &app;
        let app_id = app_id.clone();
        async move {
            let mut body = json!({"eventType": event_type, "payload": {}});
            if !channels.is_null() {
                body["channels"] = channels;
            }
            app.create_message(&app_id, body).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let paid_eu = send("invoice.paid", json!(["eu", "us"])).await;
    let paid = send("invoice.paid", Value::Null).await;
    let other_eu = send("invoice.void", json!(["eu"])).await;
    let other_us = send("invoice.void", json!(["us"])).await;

    let ids = |path: &str, n: usize| {
        let receiver = &receiver;
        let path = path.to_owned();
        async move {
            let mut got: Vec<String> = receiver
                .wait_for(&path, n)
                .await
                .iter()
                .map(|r| r.header("webhook-id").to_owned())
                .collect();
            got.sort();
            got
        }
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    assert_eq!(
        ids("/all", 4).await,
        sorted(vec![&paid_eu, &paid, &other_eu, &other_us])
    );
    assert_eq!(ids("/paid", 2).await, sorted(vec![&paid_eu, &paid]));
    assert_eq!(ids("/eu", 2).await, sorted(vec![&paid_eu, &other_eu]));
    assert_eq!(ids("/paid-eu", 1).await, vec![paid_eu.clone()]);
    // Every message's deliveries are settled once /all has them all; nothing else arrives.
    let (_, list) = app
        .get(&format!("/api/v1/app/{app_id}/msg/{other_us}/endpoint"))
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(receiver.requests("/paid-eu").len(), 1);
}

/// Credentials in an endpoint's URL are sent as HTTP Basic authentication, as browsers and
/// HTTP clients do, and not in the request line.
#[tokio::test]
async fn credentials_in_the_endpoint_url_are_sent_as_basic_auth() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let app_id = app.create_app(json!({"name": "basic"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = receiver
        .url("/basic")
        .replace("http://", "http://hooks:s%40cret@");
    app.create_endpoint(&app_id, json!({"url": url})).await;
    app.create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let got = receiver.wait_for("/basic", 1).await;
    // base64("hooks:s@cret")
    assert_eq!(got[0].header("authorization"), "Basic aG9va3M6c0BjcmV0");
}
