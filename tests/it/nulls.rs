//! `null` for an optional field reads as its absence where the contract gives the field a
//! default (the Svix SDKs send `null` for every optional argument set to `None`), and other
//! inputs the contract's document allows are accepted.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_validation_error};

#[tokio::test]
async fn null_takes_the_default_on_creation_and_replacement() {
    let app = TestApp::spawn().await;
    let created = app
        .create_app(json!({"name": "A", "uid": "a", "metadata": null, "throttleRate": null}))
        .await;
    assert_eq!(created["metadata"], json!({}));
    let (status, put) = app
        .put(
            "/api/v1/app/a",
            Some(json!({"name": "B", "metadata": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["metadata"], json!({}));

    let nulls = json!({
        "url": "https://example.com/hook", "description": null, "disabled": null,
        "metadata": null, "uid": null, "eventTypes": null, "channels": null,
        "secret": null, "headers": null, "throttleRate": null,
    });
    let endpoint = app.create_endpoint("a", nulls.clone()).await;
    assert_eq!(
        (
            &endpoint["description"],
            &endpoint["disabled"],
            &endpoint["metadata"]
        ),
        (&json!(""), &json!(false), &json!({}))
    );
    let path = format!(
        "/api/v1/app/a/endpoint/{}",
        endpoint["id"].as_str().unwrap()
    );
    let mut update = nulls;
    update.as_object_mut().unwrap().remove("secret");
    update.as_object_mut().unwrap().remove("headers");
    let (status, put) = app.put(&path, Some(update)).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(
        (&put["description"], &put["disabled"]),
        (&json!(""), &json!(false))
    );

    let (status, et) = app
        .post(
            "/api/v1/event-type",
            Some(
                json!({"name": "n.created", "description": "", "archived": null,
                        "deprecated": null, "schemas": null, "featureFlags": null}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{et}");
    assert_eq!(
        (&et["archived"], &et["deprecated"]),
        (&json!(false), &json!(false))
    );

    let (status, message) = app
        .post(
            "/api/v1/app/new-app/msg",
            Some(
                json!({"eventType": "n.created", "payload": {}, "eventId": null,
                        "channels": null, "payloadRetentionPeriod": null,
                        "application": {"name": "New", "metadata": null}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{message}");
    app.stop().await;
}

#[tokio::test]
async fn null_header_changes_are_no_changes() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "A", "uid": "a"})).await;
    let endpoint = app
        .create_endpoint(
            "a",
            json!({"url": "https://example.com/hook", "headers": {"X-Kept": "1"}}),
        )
        .await;
    let path = format!(
        "/api/v1/app/a/endpoint/{}/headers",
        endpoint["id"].as_str().unwrap()
    );
    let (status, body) = app
        .patch(&path, Some(json!({"headers": null, "deleteHeaders": null})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, headers) = app.get(&path).await;
    assert_eq!(headers["headers"], json!({"X-Kept": "1"}));
    app.stop().await;
}

/// JSON Schema counts `5.0` as an integer; a fraction or a value out of range is refused.
#[tokio::test]
async fn whole_numbers_may_be_written_with_a_zero_fraction() {
    let app = TestApp::spawn().await;
    let created = app
        .create_app(json!({"name": "A", "throttleRate": 5.0}))
        .await;
    assert_eq!(created["throttleRate"], 5);
    for rate in [json!(5.5), json!(70000), json!(-1)] {
        let (status, body) = app
            .post(
                "/api/v1/app",
                Some(json!({"name": "B", "throttleRate": rate})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{rate}: {body}");
        assert_validation_error(&body, &["body", "throttleRate"]);
    }
    app.stop().await;
}

#[tokio::test]
async fn each_schema_version_is_an_object() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "s", "description": "", "schemas": {"1": [null]}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "schemas", "1"]);
    app.stop().await;
}

#[tokio::test]
async fn an_empty_recovery_range_and_a_missing_example_are_not_422s() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "A", "uid": "a"})).await;
    app.create_endpoint("a", json!({"url": "https://example.com/hook", "uid": "e"}))
        .await;
    let (status, body) = app
        .post(
            "/api/v1/app/a/endpoint/e/recover",
            Some(json!({"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "running");
    let task = format!("/api/v1/background-task/{}", body["id"].as_str().unwrap());
    let done = crate::helpers::eventually("the empty recovery to finish", || async {
        let (_, task) = app.get(&task).await;
        (task["status"] == "finished").then_some(task)
    })
    .await;
    assert_eq!(done["data"], json!({"messagesSent": 0}));

    let (status, body) = app
        .post(
            "/api/v1/app/a/endpoint/e/send-example",
            Some(json!({"eventType": "no.examples", "exampleIndex": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    app.stop().await;
}
