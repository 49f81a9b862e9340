//! Secrets at rest (`main_key`): endpoint secrets (current and rotated), endpoint headers
//! and operational endpoint secrets are not in the database in the clear, deliveries are
//! still signed with them, and `rotate_main_key` re-encrypts everything under a new key
//! while the server delivers. On SQLite the database files are read raw (the WAL too); on
//! PostgreSQL (`HOOKD_TEST_BACKEND=postgres`) a `pg_dump` of the test database.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hookd::app::{Server, open_store};
use hookd::domain::SigningSecret;
use hookd::main_key::rotate_main_key;
use hookd::signing;
use hookd::signing::at_rest::generate_main_key;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually};
use crate::receiver::{Received, Receiver};

const OPS: &str = "/api/v1/operational-webhook/endpoint";

/// A `whsec_` secret whose base64 is easy to find: 30 bytes of `byte`.
fn known_secret(byte: u8) -> String {
    format!("whsec_{}", STANDARD.encode([byte; 30]))
}

/// The base64 part of a secret: what would be in the database if it were stored in the
/// clear, whatever the encoding around it.
fn key_part(secret: &str) -> &str {
    secret.strip_prefix("whsec_").unwrap()
}

/// Everything the database holds, as bytes: on SQLite every file of the data directory
/// (the database, its WAL and shared memory), on PostgreSQL a `pg_dump` of the database.
async fn database_bytes(app: &TestApp) -> Vec<u8> {
    match app.database() {
        Some(database) => {
            let dump = tokio::process::Command::new("pg_dump")
                .arg("--dbname")
                .arg(&database.url)
                .output()
                .await
                .expect("pg_dump must be installed for this test");
            assert!(
                dump.status.success(),
                "pg_dump failed: {}",
                String::from_utf8_lossy(&dump.stderr)
            );
            dump.stdout
        }
        None => {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(&app.config().data_dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    bytes.extend(std::fs::read(&path).unwrap());
                }
            }
            bytes
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Asserts that `received` holds a delivery signed with `secret`.
fn signed_with(received: &[Received], secret: &str) -> bool {
    let secret = SigningSecret::parse(secret).unwrap();
    received.iter().any(|delivery| {
        let timestamp: i64 = delivery.header("webhook-timestamp").parse().unwrap();
        signing::verify(
            &secret,
            delivery.header("webhook-id"),
            timestamp,
            &delivery.body,
            delivery.header("webhook-signature"),
        )
    })
}

/// Known credentials stored through the API: an endpoint created with `first` and a known
/// Authorization header, its secret rotated to `second` (so `first` is a previous secret in
/// its grace period), and an operational endpoint with `ops` (which the rotation's
/// `endpoint.updated` event is delivered to). Returns once a message has been delivered
/// signed with both secrets and the event signed with `ops`.
async fn store_known_credentials(
    app: &TestApp,
    receiver: &Receiver,
    (first, second, ops, token): (&str, &str, &str, &str),
) {
    let (status, body) = app
        .post(
            OPS,
            Some(json!({"url": receiver.url("/ops"), "secret": ops, "eventTypes": ["endpoint.updated"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.create_app(json!({"name": "Acme", "uid": "acme"})).await;
    app.create_endpoint(
        "acme",
        json!({"url": receiver.url("/hook"), "uid": "ep", "secret": first,
               "headers": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    let (status, body) = app
        .post(
            "/api/v1/app/acme/endpoint/ep/secret/rotate",
            Some(json!({"key": second})),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    app.create_message(
        "acme",
        json!({"eventType": "invoice.paid", "payload": {"n": 1}}),
    )
    .await;
    let hooks = receiver.wait_for("/hook", 1).await;
    assert!(
        signed_with(&hooks, first),
        "not signed with the previous secret"
    );
    assert!(
        signed_with(&hooks, second),
        "not signed with the current secret"
    );
    assert_eq!(
        hooks[0].header("authorization"),
        format!("Bearer {token}"),
        "the header is sent as given"
    );
    let events = receiver.wait_for("/ops", 1).await;
    assert!(signed_with(&events, ops), "operational event not signed");
    // An ingest source holding its sender's secret.
    let (status, body) = app
        .post(
            "/ingest/api/v1/source",
            Some(json!({"name": "Stripe", "uid": "stripe", "type": "stripe",
                        "config": {"secret": source_secret(token)}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The secret of the ingest source [`store_known_credentials`] makes.
fn source_secret(token: &str) -> String {
    format!("whsec_stripe_{token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_main_key_no_secret_or_header_is_in_the_database_in_the_clear() {
    let (first, second, ops) = (known_secret(0x5a), known_secret(0x3c), known_secret(0x7e));
    let token = "tok-0f2b61c9d4e87a3358b1";
    for with_key in [true, false] {
        let receiver = Receiver::start().await;
        let key = generate_main_key();
        let app = TestApp::builder()
            .delivering_to_loopback()
            .with_config(move |c| c.main_key = if with_key { key } else { String::new() })
            .spawn()
            .await;
        store_known_credentials(&app, &receiver, (&first, &second, &ops, token)).await;
        let (status, body) = app.get("/api/v1/app/acme/endpoint/ep/secret").await;
        assert_eq!(
            (status, body["key"].as_str()),
            (StatusCode::OK, Some(&*second))
        );

        let bytes = database_bytes(&app).await;
        // The dump is the right one: it holds the endpoint's URL.
        assert!(
            contains(&bytes, &receiver.url("/hook")),
            "not the test's database"
        );
        let source = source_secret(token);
        for needle in [
            key_part(&first),
            key_part(&second),
            key_part(&ops),
            token,
            &source,
        ] {
            // Without a key the same search finds every value: it can fail.
            assert_eq!(
                contains(&bytes, needle),
                !with_key,
                "{needle} (main key set: {with_key})"
            );
        }
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_main_key_re_encrypts_everything_while_deliveries_go_on() {
    let (old_key, new_key) = (generate_main_key(), generate_main_key());
    let receiver = Receiver::start().await;
    // Stored in plaintext first, then under the old key, then read under the new one.
    let mut app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(|c| c.main_key = String::new())
        .spawn()
        .await;
    let (first, second, ops) = (known_secret(0x11), known_secret(0x22), known_secret(0x33));
    store_known_credentials(&app, &receiver, (&first, &second, &ops, "tok-plain")).await;
    let old = old_key.clone();
    app.restart_with(move |c| c.main_key = old).await;
    let other = known_secret(0x44);
    app.create_endpoint(
        "acme",
        json!({"url": receiver.url("/other"), "uid": "other", "secret": other,
               "headers": {"X-Api-Key": "tok-under-old-key"}}),
    )
    .await;
    let (new, old) = (new_key.clone(), old_key.clone());
    app.restart_with(move |c| {
        c.main_key = new;
        c.previous_main_keys = vec![old];
    })
    .await;

    // Messages keep coming while the command runs, one endpoint per transaction.
    let sending = {
        let (addr, token) = (app.base_url(), app.token.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..20 {
                let response = client
                    .post(format!("{addr}/api/v1/app/acme/msg"))
                    .bearer_auth(&token)
                    .json(&json!({"eventType": "invoice.paid", "payload": {"n": n}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::ACCEPTED);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let store = open_store(app.config()).await.unwrap();
    let mut steps = 0;
    let rotated = rotate_main_key(&*store, app.config(), 1, |n| steps += n)
        .await
        .unwrap();
    assert_eq!(steps, rotated.rewritten);
    sending.await.unwrap();
    // The plaintext endpoint's secret, previous secret and headers, the operational
    // endpoint's secret, the other endpoint's secret and headers, and the ingest source's
    // config.
    assert_eq!(rotated.rewritten + rotated.skipped, 7, "{rotated:?}");
    let again = rotate_main_key(&*store, app.config(), 100, |_| {})
        .await
        .unwrap();
    assert_eq!(
        again.rewritten, 0,
        "a second run rewrites nothing: {again:?}"
    );
    let census = store.secrets_census().await.unwrap();
    assert_eq!(census.plaintext, 0, "{census:?}");
    assert_eq!(census.by_key.len(), 1, "one key left: {census:?}");

    // Every message sent during the rotation was delivered, signed with the secrets.
    let hooks = receiver.wait_for("/hook", 21).await;
    let (first_s, second_s) = (first.clone(), second.clone());
    for delivery in &hooks {
        assert!(signed_with(std::slice::from_ref(delivery), &second_s));
        assert!(signed_with(std::slice::from_ref(delivery), &first_s));
    }
    let others = receiver.wait_for("/other", 20).await;
    assert!(
        others
            .iter()
            .all(|d| signed_with(std::slice::from_ref(d), &other))
    );
    assert!(
        others
            .iter()
            .all(|d| d.header("x-api-key") == "tok-under-old-key")
    );

    // The old key alone no longer reads what is stored: hookd refuses to start with it.
    let mut only_old = app.config().clone();
    only_old.main_key = old_key.clone();
    only_old.previous_main_keys = Vec::new();
    only_old.listen = "127.0.0.1:0".parse().unwrap();
    app.stop_keeping_data().await;
    let refused = Server::start(only_old)
        .await
        .err()
        .expect("started with the old key");
    let message = format!("{refused:#}");
    assert!(message.contains("not configured"), "{message}");
    assert!(
        !message.contains(&old_key) && !message.contains(&new_key),
        "{message}"
    );

    // The new key alone does, and deliveries go on signed as before.
    let new = new_key.clone();
    app.restart_with(move |c| {
        c.main_key = new;
        c.previous_main_keys = Vec::new();
    })
    .await;
    let (status, body) = app.get("/api/v1/app/acme/endpoint/other/headers").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.get("/ingest/api/v1/source/stripe").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.create_message(
        "acme",
        json!({"eventType": "invoice.paid", "payload": {"n": 99}}),
    )
    .await;
    let last: Vec<Received> = eventually("the last message to be delivered", || async {
        let last: Vec<Received> = receiver
            .requests("/hook")
            .into_iter()
            .filter(|d| serde_json::from_slice::<Value>(&d.body).unwrap()["n"] == json!(99))
            .collect();
        (!last.is_empty()).then_some(last)
    })
    .await;
    assert!(signed_with(&last, &second));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_value_moved_to_another_endpoint_is_refused_not_used() {
    let key = generate_main_key();
    let receiver = Receiver::start().await;
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| c.main_key = key)
        .spawn()
        .await;
    app.create_app(json!({"name": "Acme", "uid": "acme"})).await;
    let secret_a = known_secret(0x61);
    let a = app
        .create_endpoint(
            "acme",
            json!({"url": receiver.url("/a"), "uid": "a", "secret": secret_a}),
        )
        .await;
    let b = app
        .create_endpoint("acme", json!({"url": receiver.url("/b"), "uid": "b"}))
        .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    // Someone with write access to the database copies a's sealed secret into b's row.
    let copy = "UPDATE endpoint SET secret = (SELECT secret FROM endpoint WHERE id = $1) \
                WHERE id = $2";
    match app.database() {
        Some(database) => {
            let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
            sqlx::query(copy)
                .bind(a)
                .bind(b)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        None => {
            let path = app.config().data_dir.join("hookd.db");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query(copy)
                .bind(a)
                .bind(b)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
    let (status, body) = app.get("/api/v1/app/acme/endpoint/b/secret").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["code"], "secret_unreadable", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(b) && detail.contains("secret"), "{detail}");
    let (status, _) = app.get("/api/v1/app/acme/endpoint/a/secret").await;
    assert_eq!(status, StatusCode::OK);
    // Messages are still accepted, and delivered to the endpoint whose secret reads; b's
    // delivery waits (nothing can sign it), and the server goes on.
    for n in 0..2 {
        app.create_message("acme", json!({"eventType": "x", "payload": {"n": n}}))
            .await;
    }
    let delivered = receiver.wait_for("/a", 2).await;
    assert!(
        delivered
            .iter()
            .all(|d| signed_with(std::slice::from_ref(d), &secret_a))
    );
    assert!(
        receiver.requests("/b").is_empty(),
        "sent without its secret"
    );
    let (status, _) = app.get("/api/v1/app/acme/endpoint/a").await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
