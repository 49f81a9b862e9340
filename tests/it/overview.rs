//! `GET /api/v1/hookd/overview`, what the admin UI's overview page shows: activity per
//! minute over the last hour, the queue, and the failing endpoints.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestAppBuilder, eventually, on_both_backends, send};
use crate::receiver::{Receiver, Reply};

on_both_backends!(overview_counts_the_last_hour_and_lists_failing_endpoints);

async fn overview_counts_the_last_hour_and_lists_failing_endpoints(builder: TestAppBuilder) {
    let app = builder
        .delivering_to_loopback()
        .with_config(|c| c.retry_schedule = vec![])
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/bad", Reply::status(500));
    let created = app.create_app(json!({"name": "Overview"})).await;
    let app_id = created["id"].as_str().unwrap().to_owned();
    let good = app
        .create_endpoint(&app_id, json!({"url": receiver.url("/ok")}))
        .await;
    let bad = app
        .create_endpoint(&app_id, json!({"url": receiver.url("/bad")}))
        .await;
    for i in 0..3 {
        app.create_message(
            &app_id,
            json!({"eventType": "thing.done", "payload": {"i": i}}),
        )
        .await;
    }
    let overview = eventually("six attempts to be counted", || async {
        let (status, overview) = app.get("/api/v1/hookd/overview").await;
        assert_eq!(status, StatusCode::OK, "{overview}");
        let total = |field: &str| -> u64 {
            overview["perMinute"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m[field].as_u64().unwrap())
                .sum()
        };
        let done = total("delivered") == 3 && total("failed") == 3;
        let listed = !overview["troubledEndpoints"].as_array().unwrap().is_empty();
        let accepted = total("accepted");
        (done && listed).then(|| {
            assert_eq!(accepted, 3, "{overview}");
            overview
        })
    })
    .await;
    let minutes = overview["perMinute"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let last: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(minutes[59]["minute"].clone()).unwrap();
    let age = chrono::Utc::now() - last;
    assert!(
        age >= chrono::TimeDelta::zero() && age < chrono::TimeDelta::seconds(120),
        "the last minute is the current one: {last}"
    );
    let troubled: Vec<&Value> = overview["troubledEndpoints"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(troubled.len(), 1, "{overview}");
    assert_eq!(troubled[0]["endpointId"], bad["id"]);
    assert_eq!(troubled[0]["appId"], json!(app_id));
    assert_eq!(troubled[0]["appName"], "Overview");
    assert!(
        ["failing", "degraded"].contains(&troubled[0]["state"].as_str().unwrap()),
        "{overview}"
    );
    assert_eq!(troubled[0]["consecutiveFailures"], 3);
    assert_ne!(troubled[0]["endpointId"], good["id"]);
    assert_eq!(overview["endpointsEnabled"], 2);
    assert_eq!(overview["queue"]["due"], 0, "{overview}");

    // Admin only: a portal token (limited to the application) and a named reader are refused.
    let (status, portal) = app
        .post(
            &format!("/api/v1/auth/app-portal-access/{app_id}"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{portal}");
    let (status, reader) = app
        .post(
            "/api/v1/auth/token",
            Some(json!({"name": "reader", "abilities": ["app:read", "message:read"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reader}");
    for token in [&portal["token"], &reader["token"]] {
        let request = app
            .raw_request(Method::GET, "/api/v1/hookd/overview")
            .bearer_auth(token.as_str().unwrap());
        let (status, body) = send(request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
}
