//! Messages sent at the same time are written in shared transactions (group commit); each
//! must still succeed or fail on its own.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, ids};

async fn post_all(app: &TestApp, requests: Vec<(String, Value)>) -> Vec<(StatusCode, Value)> {
    join_all(
        requests
            .iter()
            .map(|(path, body)| app.post(path, Some(body.clone()))),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_messages_to_a_new_uid_create_one_application() {
    let app = TestApp::spawn().await;
    let body = json!({"eventType": "t", "payload": {}, "application": {"name": "Inline"}});
    let requests = (0..20)
        .map(|_| ("/api/v1/app/born/msg".to_owned(), body.clone()))
        .collect();
    let answers = post_all(&app, requests).await;
    for (status, message) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED, "{message}");
    }
    let apps = app.list_all("/api/v1/app").await;
    assert_eq!(apps.len(), 1, "{apps:?}");
    assert_eq!(apps[0]["uid"], "born");
    assert_eq!(app.list_all("/api/v1/app/born/msg").await.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_does_not_fail_the_others_sent_with_it() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let mut requests = Vec::new();
    for i in 0..30 {
        let (path, body) = match i % 3 {
            // Ten messages all claiming one eventId: exactly one may win.
            0 => (
                "owner",
                json!({"eventType": "t", "eventId": "dup", "payload": {}}),
            ),
            1 => ("ghost", json!({"eventType": "t", "payload": {}})),
            _ => (
                "owner",
                json!({"eventType": "t", "eventId": format!("u{i}"), "payload": {}}),
            ),
        };
        requests.push((format!("/api/v1/app/{path}/msg"), body));
    }
    let answers = post_all(&app, requests).await;
    let count = |wanted: StatusCode| answers.iter().filter(|(s, _)| *s == wanted).count();
    assert_eq!(count(StatusCode::ACCEPTED), 11, "{answers:?}");
    assert_eq!(count(StatusCode::CONFLICT), 9, "{answers:?}");
    assert_eq!(count(StatusCode::NOT_FOUND), 10, "{answers:?}");

    let accepted: Vec<Value> = answers
        .into_iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .map(|(_, m)| m)
        .collect();
    let mut stored = ids(&app.list_all("/api/v1/app/owner/msg").await);
    let mut expected = ids(&accepted);
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected);
    let (status, _) = app.get("/api/v1/app/owner/msg/dup").await;
    assert_eq!(status, StatusCode::OK);
}
