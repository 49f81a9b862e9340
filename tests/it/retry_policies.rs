//! Retry policies (README, "Retry policies"): which one applies (endpoint > event type >
//! priority > default), what each kind of delay and timeout does, that a changed policy
//! applies from the next attempt, and the 422s of bad ones. Driven by a manual clock.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hookd::delivery::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::{attempts, delivery_state};
use crate::helpers::{TestApp, assert_validation_error};
use crate::receiver::{Receiver, Reply};

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("a timestamp").parse().unwrap()
}

/// A server whose clock starts an hour ahead and stands still until the test moves it; the
/// default schedule is one retry after 100 s, and `high` messages retry after 200 s.
async fn server() -> (TestApp, ManualClock, DateTime<Utc>) {
    let start = hookd::domain::time::now() + TimeDelta::hours(1);
    let clock = ManualClock::new(start);
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_clock(clock.clone())
        .with_config(move |c| {
            c.retry_schedule = vec![100];
            c.retry_jitter = 0.0;
            c.retry_policy_high = r#"{"schedule": [200]}"#.into();
        })
        .spawn()
        .await;
    (app, clock, start)
}

async fn new_app(app: &TestApp) -> String {
    app.create_app(json!({"name": "policies"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An endpoint for `path`, with `extra` fields (a `retryPolicy`, `eventTypes`).
async fn endpoint(
    app: &TestApp,
    app_id: &str,
    receiver: &Receiver,
    path: &str,
    extra: Value,
) -> String {
    let mut body = json!({"url": receiver.url(path)});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let created = app.create_endpoint(app_id, body).await;
    created["id"].as_str().expect("an endpoint").to_owned()
}

async fn message(app: &TestApp, app_id: &str, body: Value) -> String {
    app.create_message(app_id, body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_endpoint_policy_wins_over_the_event_type_over_the_priority_over_the_default() {
    let (app, _clock, start) = server().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/a", Reply::status(500));
    receiver.default_reply("/b", Reply::status(500));
    let (status, _) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "typed", "description": "t", "retryPolicy": {"schedule": [300]}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let plain = new_app(&app).await;
    endpoint(&app, &plain, &receiver, "/a", json!({})).await;
    let special = new_app(&app).await;
    let ep = endpoint(
        &app,
        &special,
        &receiver,
        "/b",
        json!({"retryPolicy": {"schedule": [400], "timeout": 7}}),
    )
    .await;
    let (_, read) = app
        .get(&format!("/api/v1/app/{special}/endpoint/{ep}"))
        .await;
    assert_eq!(
        read["retryPolicy"],
        json!({"schedule": [400], "timeout": 7})
    );

    let cases = [
        (
            &plain,
            json!({"eventType": "other", "payload": {}}),
            100,
            "default",
            15_000,
        ),
        (
            &plain,
            json!({"eventType": "other", "payload": {}, "priority": "high"}),
            200,
            "priority:high",
            15_000,
        ),
        (
            &plain,
            json!({"eventType": "typed", "payload": {}, "priority": "high"}),
            300,
            "eventType",
            15_000,
        ),
        (
            &special,
            json!({"eventType": "typed", "payload": {}, "priority": "high"}),
            400,
            "endpoint",
            7_000,
        ),
    ];
    for (app_id, body, delay, source, timeout_ms) in cases {
        let msg_id = message(&app, app_id, body).await;
        let state = delivery_state(&app, app_id, &msg_id, "pending").await;
        assert_eq!(
            time(&state["nextAttempt"]),
            start + TimeDelta::seconds(delay),
            "{source}"
        );
        let log = attempts(&app, app_id, &msg_id, 1).await;
        assert_eq!(log[0]["policy"], source);
        assert_eq!(log[0]["timeoutMs"], timeout_ms, "{source}");
    }
    // A message's priority is shown with it.
    let msg_id = message(
        &app,
        &plain,
        json!({"eventType": "x", "payload": {}, "priority": "low"}),
    )
    .await;
    let (_, msg) = app.get(&format!("/api/v1/app/{plain}/msg/{msg_id}")).await;
    assert_eq!(msg["priority"], "low");
}

#[tokio::test]
async fn retry_on_4xx_false_fails_a_400_at_once_but_retries_408_425_and_429() {
    let (app, _clock, start) = server().await;
    let receiver = Receiver::start().await;
    let app_id = new_app(&app).await;
    for code in [400u16, 404, 408, 425, 429, 500] {
        let path = format!("/s{code}");
        receiver.default_reply(&path, Reply::status(code));
        endpoint(
            &app,
            &app_id,
            &receiver,
            &path,
            json!({"eventTypes": [format!("t{code}")],
                   "retryPolicy": {"retryOn4xx": false, "schedule": [30]}}),
        )
        .await;
    }
    for (code, expected) in [
        (400, "fail"),
        (404, "fail"),
        (408, "pending"),
        (425, "pending"),
        (429, "pending"),
        (500, "pending"),
    ] {
        let msg_id = message(
            &app,
            &app_id,
            json!({"eventType": format!("t{code}"), "payload": {}}),
        )
        .await;
        let state = delivery_state(&app, &app_id, &msg_id, expected).await;
        if expected == "pending" {
            assert_eq!(
                time(&state["nextAttempt"]),
                start + TimeDelta::seconds(30),
                "{code}"
            );
        } else {
            assert_eq!(state["nextAttempt"], Value::Null, "{code}");
        }
        assert_eq!(receiver.requests(&format!("/s{code}")).len(), 1, "{code}");
    }
    // The default retries every failure, 4xx included.
    let other = new_app(&app).await;
    receiver.default_reply("/plain400", Reply::status(400));
    endpoint(&app, &other, &receiver, "/plain400", json!({})).await;
    let msg_id = message(&app, &other, json!({"eventType": "a", "payload": {}})).await;
    delivery_state(&app, &other, &msg_id, "pending").await;
}

#[tokio::test]
async fn exponential_delays_and_a_growing_timeout_are_followed_and_shown() {
    let (app, clock, start) = server().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/exp", Reply::status(500));
    let app_id = new_app(&app).await;
    endpoint(
        &app,
        &app_id,
        &receiver,
        "/exp",
        json!({"retryPolicy": {
            "exponential": {"base": 10, "factor": 3, "maxDelay": 60, "maxAttempts": 4},
            "timeout": 2, "timeoutGrowth": 2, "maxTimeout": 5}}),
    )
    .await;
    let msg_id = message(&app, &app_id, json!({"eventType": "a", "payload": {}})).await;
    let mut at = start;
    // 10 s, then 30 s, then 90 s capped at 60 s; then the fourth attempt is the last.
    for (n, delay) in [(1, 10), (2, 30), (3, 60)] {
        receiver.wait_for("/exp", n).await;
        let state = delivery_state(&app, &app_id, &msg_id, "pending").await;
        at += TimeDelta::seconds(delay);
        assert_eq!(time(&state["nextAttempt"]), at, "after attempt {n}");
        clock.advance(Duration::from_secs(delay as u64));
    }
    receiver.wait_for("/exp", 4).await;
    delivery_state(&app, &app_id, &msg_id, "fail").await;
    let log = attempts(&app, &app_id, &msg_id, 4).await;
    let timeouts: Vec<_> = log.iter().rev().map(|a| a["timeoutMs"].clone()).collect();
    assert_eq!(
        timeouts,
        [json!(2000), json!(4000), json!(5000), json!(5000)]
    );
    assert!(log.iter().all(|a| a["policy"] == "endpoint"));
}

#[tokio::test]
async fn a_changed_policy_applies_from_the_next_retry_of_pending_deliveries() {
    let (app, clock, start) = server().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/c", Reply::status(500));
    let app_id = new_app(&app).await;
    let ep = endpoint(
        &app,
        &app_id,
        &receiver,
        "/c",
        json!({"retryPolicy": {"schedule": [50, 50]}}),
    )
    .await;
    let msg_id = message(&app, &app_id, json!({"eventType": "chg", "payload": {}})).await;
    let state = delivery_state(&app, &app_id, &msg_id, "pending").await;
    assert_eq!(time(&state["nextAttempt"]), start + TimeDelta::seconds(50));

    // The retry already scheduled keeps its time; what follows it is the new policy's.
    let (status, _) = app
        .patch(
            &format!("/api/v1/app/{app_id}/endpoint/{ep}"),
            Some(json!({"retryPolicy": {"schedule": [50, 7, 9], "timeout": 3}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    clock.advance(Duration::from_secs(50));
    receiver.wait_for("/c", 2).await;
    let log = attempts(&app, &app_id, &msg_id, 2).await;
    assert_eq!(log[0]["timeoutMs"], 3000);
    let state = eventually_next(&app, &app_id, &msg_id, start + TimeDelta::seconds(57)).await;
    assert_eq!(state["statusText"], "pending");

    // Removing the endpoint's policy hands the delivery to the event type's, set through
    // the Svix SDK's retry-schedule route.
    let (status, _) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "chg", "description": "c"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .put(
            "/api/v1/event-type/chg/retry-schedule",
            Some(json!({"retrySchedule": [{"secs": 1, "nanos": 0}, {"secs": 2, "nanos": 0}, {"secs": 11, "nanos": 0}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .patch(
            &format!("/api/v1/app/{app_id}/endpoint/{ep}"),
            Some(json!({"retryPolicy": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    clock.advance(Duration::from_secs(7));
    receiver.wait_for("/c", 3).await;
    let log = attempts(&app, &app_id, &msg_id, 3).await;
    assert_eq!(log[0]["policy"], "eventType");
    assert_eq!(log[0]["timeoutMs"], 15_000);
    eventually_next(&app, &app_id, &msg_id, start + TimeDelta::seconds(68)).await;
}

/// The delivery's state once its next attempt is at `at`.
async fn eventually_next(app: &TestApp, app_id: &str, msg_id: &str, at: DateTime<Utc>) -> Value {
    crate::helpers::eventually("the next attempt to be rescheduled", || async {
        let (_, list) = app
            .get(&format!("/api/v1/app/{app_id}/msg/{msg_id}/endpoint"))
            .await;
        let first = list["data"][0].clone();
        (first["nextAttempt"].is_string() && time(&first["nextAttempt"]) == at).then_some(first)
    })
    .await
}

#[tokio::test]
async fn the_retry_schedule_route_reads_and_writes_the_event_types_delays() {
    let app = TestApp::spawn().await;
    let (status, _) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "sched", "description": "s",
                        "retryPolicy": {"exponential": {"base": 5, "maxAttempts": 4}, "timeout": 9}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.get("/api/v1/event-type/sched/retry-schedule").await;
    assert_eq!(status, StatusCode::OK);
    let secs = |list: &[u64]| -> Value {
        list.iter()
            .map(|s| json!({"secs": s, "nanos": 0}))
            .collect::<Vec<_>>()
            .into()
    };
    assert_eq!(body, json!({"retrySchedule": secs(&[5, 10, 20])}));

    let (status, body) = app
        .put(
            "/api/v1/event-type/sched/retry-schedule",
            Some(json!({"retrySchedule": [{"secs": 60, "nanos": 0}, 300]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"retrySchedule": secs(&[60, 300])}));
    let (_, et) = app.get("/api/v1/event-type/sched").await;
    assert_eq!(
        et["retryPolicy"],
        json!({"schedule": [60, 300], "timeout": 9})
    );

    let (status, body) = app
        .put(
            "/api/v1/event-type/sched/retry-schedule",
            Some(json!({"retrySchedule": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"retrySchedule": null}));
    let (_, et) = app.get("/api/v1/event-type/sched").await;
    assert_eq!(et["retryPolicy"], json!({"timeout": 9}));

    // A PUT of the event type that does not name the policy leaves it.
    let (status, et) = app
        .put(
            "/api/v1/event-type/sched",
            Some(json!({"description": "again"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(et["retryPolicy"], json!({"timeout": 9}));

    let (status, _) = app.get("/api/v1/event-type/missing/retry-schedule").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_policies_and_priorities_are_422s_naming_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let app_id = new_app(&app).await;
    let bad: &[(Value, &[&str])] = &[
        (json!({"schedule": [5, -1]}), &["schedule", "1"]),
        (json!({"schedule": [2_592_001]}), &["schedule", "0"]),
        (json!({"schedule": vec![1; 50]}), &["schedule"]),
        (
            json!({"exponential": {"base": 1, "maxAttempts": 0}}),
            &["exponential", "maxAttempts"],
        ),
        (
            json!({"exponential": {"base": 1, "maxAttempts": 51}}),
            &["exponential", "maxAttempts"],
        ),
        (
            json!({"exponential": {"base": 1, "factor": 0.5, "maxAttempts": 3}}),
            &["exponential", "factor"],
        ),
        (
            json!({"exponential": {"base": 0, "maxAttempts": 3}}),
            &["exponential", "base"],
        ),
        (
            json!({"exponential": {"base": 10, "maxDelay": 5, "maxAttempts": 3}}),
            &["exponential", "maxDelay"],
        ),
        (
            json!({"schedule": [1], "exponential": {"base": 1, "maxAttempts": 3}}),
            &["exponential"],
        ),
        (json!({"jitter": 1.5}), &["jitter"]),
        (json!({"jitter": -0.5}), &["jitter"]),
        (json!({"timeout": 0}), &["timeout"]),
        (json!({"timeout": 61}), &["timeout"]),
        (json!({"timeoutGrowth": 0.9}), &["timeoutGrowth"]),
        (json!({"maxTimeout": 600}), &["maxTimeout"]),
        (json!({"timeout": 10, "maxTimeout": 5}), &["maxTimeout"]),
        (json!({"retries": 3}), &[]),
        (json!({"schedule": [1.5]}), &["schedule"]),
        (
            json!({"exponential": {"base": 2.5, "maxAttempts": 3}}),
            &["exponential", "base"],
        ),
    ];
    for (policy, field) in bad {
        let (status, body) = app
            .post(
                &format!("/api/v1/app/{app_id}/endpoint"),
                Some(json!({"url": "https://example.com/h", "retryPolicy": policy})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{policy}: {body}");
        if !field.is_empty() {
            let mut loc = vec!["body", "retryPolicy"];
            loc.extend_from_slice(field);
            assert_validation_error(&body, &loc);
        } else {
            assert_eq!(body["detail"][0]["loc"][1], "retryPolicy", "{body}");
        }
        let (status, body) = app
            .post(
                "/api/v1/event-type",
                Some(json!({"name": "bad.policy", "description": "b", "retryPolicy": policy})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{policy}: {body}");
    }
    let (_, list) = app.get(&format!("/api/v1/app/{app_id}/endpoint")).await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = app.get("/api/v1/event-type/bad.policy").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Updates: refused, and the stored policy stays.
    let created = app
        .create_endpoint(
            &app_id,
            json!({"url": "https://example.com/h", "retryPolicy": {"schedule": [5]}}),
        )
        .await;
    let ep = created["id"].as_str().unwrap();
    let path = format!("/api/v1/app/{app_id}/endpoint/{ep}");
    // Whole numbers may be written with a zero fraction.
    let (status, body) = app
        .patch(
            &path,
            Some(json!({"retryPolicy": {"schedule": [5.0], "timeout": 3.0}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["retryPolicy"], json!({"schedule": [5], "timeout": 3}));
    let (status, body) = app
        .patch(&path, Some(json!({"retryPolicy": {"timeout": 0}})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "retryPolicy", "timeout"]);
    let (status, body) = app
        .put(
            &path,
            Some(json!({"url": "https://example.com/h", "retryPolicy": {"jitter": 2}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "retryPolicy", "jitter"]);
    let (_, read) = app.get(&path).await;
    assert_eq!(read["retryPolicy"], json!({"schedule": [5], "timeout": 3}));

    let (status, _) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "good", "description": "g"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (body, loc) in [
        (
            json!({"retrySchedule": [5, -5]}),
            vec!["body", "retrySchedule", "1"],
        ),
        (
            json!({"retrySchedule": [{"secs": 5, "nanos": 1}]}),
            vec!["body", "retrySchedule", "0", "nanos"],
        ),
        (
            json!({"retrySchedule": vec![1; 50]}),
            vec!["body", "retrySchedule"],
        ),
        (
            json!({"retrySchedule": [{"secs": 1.5, "nanos": 0}]}),
            vec!["body", "retrySchedule", "0"],
        ),
    ] {
        let (status, err) = app
            .put("/api/v1/event-type/good/retry-schedule", Some(body))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_validation_error(&err, &loc);
    }
    let (_, schedule) = app.get("/api/v1/event-type/good/retry-schedule").await;
    assert_eq!(schedule, json!({"retrySchedule": null}));
    let (status, body) = app
        .patch(
            "/api/v1/event-type/good",
            Some(json!({"retryPolicy": {"exponential": {"base": 1, "maxAttempts": 0}}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(
        &body,
        &["body", "retryPolicy", "exponential", "maxAttempts"],
    );
    let (_, et) = app.get("/api/v1/event-type/good").await;
    assert_eq!(et["retryPolicy"], Value::Null);

    // An unknown priority: 422, and no message.
    let (status, body) = app
        .post(
            &format!("/api/v1/app/{app_id}/msg"),
            Some(json!({"eventType": "a", "payload": {}, "priority": "urgent"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "priority"]);
    let (_, msgs) = app.get(&format!("/api/v1/app/{app_id}/msg")).await;
    assert_eq!(msgs["data"], json!([]));
}

#[tokio::test]
async fn the_openapi_document_describes_policies_priorities_and_the_attempts_fields() {
    let app = TestApp::spawn().await;
    let (status, doc) =
        crate::helpers::send(app.raw_request(reqwest::Method::GET, "/api/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let schemas = &doc["components"]["schemas"];
    let props = |name: &str| schemas[name]["properties"].clone();
    let policy = props("RetryPolicySpec");
    for field in [
        "schedule",
        "exponential",
        "jitter",
        "retryOn4xx",
        "timeout",
        "timeoutGrowth",
        "maxTimeout",
    ] {
        assert!(
            policy[field].is_object(),
            "RetryPolicySpec.{field}: {policy}"
        );
    }
    let exponential = props("ExponentialSpec");
    for field in ["base", "factor", "maxDelay", "maxAttempts"] {
        assert!(exponential[field].is_object(), "ExponentialSpec.{field}");
    }
    for (schema, field) in [
        ("EndpointIn", "retryPolicy"),
        ("EndpointUpdate", "retryPolicy"),
        ("EndpointPatch", "retryPolicy"),
        ("EndpointOut", "retryPolicy"),
        ("EventTypeIn", "retryPolicy"),
        ("EventTypeUpdate", "retryPolicy"),
        ("EventTypePatch", "retryPolicy"),
        ("EventTypeOut", "retryPolicy"),
        ("MessageIn", "priority"),
        ("MessageOut", "priority"),
        ("MessageAttemptOut", "policy"),
        ("MessageAttemptOut", "timeoutMs"),
        ("RetryScheduleInOut", "retrySchedule"),
    ] {
        assert!(
            props(schema)[field].is_object(),
            "{schema}.{field} is not documented"
        );
    }
    let route = &doc["paths"]["/api/v1/event-type/{event_type_name}/retry-schedule"];
    assert_eq!(
        route["get"]["operationId"],
        "v1.event-type.get-retry-schedule"
    );
    assert_eq!(
        route["put"]["operationId"],
        "v1.event-type.set-retry-schedule"
    );
}
