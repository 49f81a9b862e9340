//! A store that stops answering: requests end at `api_request_timeout_secs` with 504, and
//! messages beyond `max_pending_messages` are refused at once with 503, nothing written.
//!
//! The store is made to stop answering by holding its write lock from outside: SQLite's
//! `BEGIN IMMEDIATE` on the database file, or an exclusive lock on PostgreSQL's message
//! table. Both backends (the suite's `HOOKD_TEST_BACKEND`).

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::TestApp;

/// A connection holding the store's write lock until it is released.
enum Lock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Lock {
    async fn take(app: &TestApp) -> Lock {
        let config = app.config();
        if config.database_url.is_empty() {
            let path = config.data_dir.join("hookd.db");
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            Lock::Sqlite(conn)
        } else {
            let mut conn = sqlx::PgConnection::connect(&config.database_url)
                .await
                .unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query("LOCK TABLE message IN ACCESS EXCLUSIVE MODE")
                .execute(&mut conn)
                .await
                .unwrap();
            Lock::Postgres(conn)
        }
    }

    async fn release(self) {
        match self {
            Lock::Sqlite(mut c) => sqlx::query("ROLLBACK").execute(&mut c).await.map(drop),
            Lock::Postgres(mut c) => sqlx::query("ROLLBACK").execute(&mut c).await.map(drop),
        }
        .unwrap();
    }
}

async fn post_message(app: &TestApp, app_id: &str, event_id: &str) -> reqwest::Response {
    app.raw_request(Method::POST, &format!("/api/v1/app/{app_id}/msg"))
        .bearer_auth(&app.token)
        .timeout(Duration::from_secs(30))
        .json(&json!({"eventType": "t", "eventId": event_id, "payload": {}}))
        .send()
        .await
        .unwrap()
}

async fn messages_with_event_id(app: &TestApp, app_id: &str, event_id: &str) -> usize {
    let (_, page) = app
        .get(&format!("/api/v1/app/{app_id}/msg?limit=250"))
        .await;
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["eventId"] == event_id)
        .count()
}

#[tokio::test]
async fn a_request_the_store_does_not_answer_ends_with_504_and_a_retry_stores_it_once() {
    let app = TestApp::builder()
        .with_config(|c| {
            c.body_read_timeout_secs = 1;
            c.api_request_timeout_secs = 2;
        })
        .spawn()
        .await;
    let app_id = app.create_app(json!({"name": "slow"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lock = Lock::take(&app).await;
    let started = Instant::now();
    let response = post_message(&app, &app_id, "slow-1").await;
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "store_timeout");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("api_request_timeout_secs"),
        "{body}"
    );
    lock.release().await;

    // The write may have gone through once the lock was released; a retry with the same
    // eventId finds it (409) or writes it (202), and either way it is there once.
    let retry = post_message(&app, &app_id, "slow-1").await;
    assert!(
        matches!(retry.status(), StatusCode::ACCEPTED | StatusCode::CONFLICT),
        "{}",
        retry.status()
    );
    assert_eq!(messages_with_event_id(&app, &app_id, "slow-1").await, 1);
}

#[tokio::test]
async fn messages_beyond_max_pending_are_refused_at_once_and_not_written() {
    let app = TestApp::builder()
        .with_config(|c| c.max_pending_messages = 1)
        .spawn()
        .await;
    let app_id = app.create_app(json!({"name": "crowded"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lock = Lock::take(&app).await;
    let waiting = {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/api/v1/app/{app_id}/msg", app.base_url()),
            app.token.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"eventType": "t", "eventId": "first", "payload": {}}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // The first message holds the node's one place while it waits for the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let refused = post_message(&app, &app_id, "second").await;
    assert!(started.elapsed() < Duration::from_secs(2), "it waited");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_pending_messages"),
        "{body}"
    );

    lock.release().await;
    assert_eq!(waiting.await.unwrap(), StatusCode::ACCEPTED);
    assert_eq!(messages_with_event_id(&app, &app_id, "first").await, 1);
    assert_eq!(messages_with_event_id(&app, &app_id, "second").await, 0);
    // The place is given back with the answer.
    assert_eq!(
        post_message(&app, &app_id, "third").await.status(),
        StatusCode::ACCEPTED
    );
}
