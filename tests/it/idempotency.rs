//! `Idempotency-Key` on POST: a retried request gets the first response and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, ids, send};

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let request = app
        .raw_request(Method::POST, path)
        .bearer_auth(&app.token)
        .header("idempotency-key", key)
        .json(&body);
    send(request).await
}

#[tokio::test]
async fn a_repeated_key_replays_the_first_response() {
    let app = TestApp::spawn().await;
    let first = post_with_key(&app, "/api/v1/app", "key-1", json!({"name": "Once"})).await;
    assert_eq!(first.0, StatusCode::CREATED);
    let second = post_with_key(&app, "/api/v1/app", "key-1", json!({"name": "Once"})).await;
    assert_eq!(second, first);
    // Even with another body: the key, not the body, identifies the request.
    let third = post_with_key(&app, "/api/v1/app", "key-1", json!({"name": "Other"})).await;
    assert_eq!(third, first);
    assert_eq!(
        ids(&app.list_all("/api/v1/app").await),
        [first.1["id"].as_str().unwrap()]
    );

    // Another key is another request.
    let other = post_with_key(&app, "/api/v1/app", "key-2", json!({"name": "Once"})).await;
    assert_eq!(other.0, StatusCode::CREATED);
    assert_ne!(other.1["id"], first.1["id"]);
    assert_eq!(app.list_all("/api/v1/app").await.len(), 2);
}

#[tokio::test]
async fn without_a_key_every_request_runs() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Twice"})).await;
    app.create_app(json!({"name": "Twice"})).await;
    assert_eq!(app.list_all("/api/v1/app").await.len(), 2);
}

#[tokio::test]
async fn concurrent_messages_with_one_key_are_written_once() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let body = json!({"eventType": "t", "payload": {"n": 1}});
    let posts = (0..8).map(|_| post_with_key(&app, "/api/v1/app/owner/msg", "same", body.clone()));
    let answers = futures::future::join_all(posts).await;
    assert_eq!(answers[0].0, StatusCode::ACCEPTED, "{:?}", answers[0]);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(
        app.list_all("/api/v1/app/owner/msg").await,
        [answers[0].1.clone()]
    );
}

#[tokio::test]
async fn a_refused_message_is_replayed_and_its_key_stays_used() {
    let app = TestApp::spawn().await;
    let body = json!({"eventType": "t", "payload": {"n": 1}});
    let refused = post_with_key(&app, "/api/v1/app/nobody/msg", "k", body.clone()).await;
    assert_eq!(refused.0, StatusCode::NOT_FOUND);
    // The application exists now, but the key's answer was the refusal.
    app.create_app(json!({"name": "Nobody", "uid": "nobody"}))
        .await;
    let again = post_with_key(&app, "/api/v1/app/nobody/msg", "k", body.clone()).await;
    assert_eq!(again, refused);
    // An invalid message is answered before any write, and kept for its key the same way.
    let invalid = post_with_key(&app, "/api/v1/app/nobody/msg", "v", json!({"payload": {}})).await;
    assert_eq!(invalid.0, StatusCode::UNPROCESSABLE_ENTITY);
    let fixed = post_with_key(&app, "/api/v1/app/nobody/msg", "v", body).await;
    assert_eq!(fixed, invalid);
    assert!(app.list_all("/api/v1/app/nobody/msg").await.is_empty());
}

#[tokio::test]
async fn a_replayed_message_is_not_enqueued_twice() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let body = json!({"eventType": "t", "payload": {"n": 1}});
    let first = post_with_key(&app, "/api/v1/app/owner/msg", "m", body.clone()).await;
    assert_eq!(first.0, StatusCode::ACCEPTED);
    let again = post_with_key(&app, "/api/v1/app/owner/msg", "m", body).await;
    assert_eq!(again, first);
    assert_eq!(app.list_all("/api/v1/app/owner/msg").await, [first.1]);
}

#[tokio::test]
async fn the_same_key_on_another_path_is_another_request() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "A", "uid": "a"})).await;
    app.create_app(json!({"name": "B", "uid": "b"})).await;
    let body = json!({"eventType": "t", "payload": {}});
    let (status_a, in_a) = post_with_key(&app, "/api/v1/app/a/msg", "shared", body.clone()).await;
    let (status_b, in_b) = post_with_key(&app, "/api/v1/app/b/msg", "shared", body).await;
    assert_eq!(
        (status_a, status_b),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_ne!(in_a["id"], in_b["id"]);
    assert_eq!(app.list_all("/api/v1/app/a/msg").await, [in_a]);
    assert_eq!(app.list_all("/api/v1/app/b/msg").await, [in_b]);

    let (status, app_c) = post_with_key(&app, "/api/v1/app", "shared", json!({"name": "C"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app_c["name"], "C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_create_one_application() {
    let app = TestApp::spawn().await;
    let requests: Vec<_> = (0..12)
        .map(|_| {
            let request = app
                .raw_request(Method::POST, "/api/v1/app")
                .bearer_auth(&app.token)
                .header("idempotency-key", "racing")
                .json(&json!({"name": "Raced"}));
            tokio::spawn(send(request))
        })
        .collect();
    let mut responses = Vec::new();
    for request in requests {
        responses.push(request.await.unwrap());
    }
    let first = responses[0].clone();
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    for response in &responses {
        assert_eq!(response, &first);
    }
    assert_eq!(app.list_all("/api/v1/app").await, [first.1]);
}

#[tokio::test]
async fn a_request_refused_for_its_token_does_not_use_up_the_key() {
    let app = TestApp::spawn().await;
    let request = app
        .raw_request(Method::POST, "/api/v1/app")
        .bearer_auth("wrong")
        .header("idempotency-key", "k")
        .json(&json!({"name": "A"}));
    let (status, _) = send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, created) = post_with_key(&app, "/api/v1/app", "k", json!({"name": "A"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(app.list_all("/api/v1/app").await, [created]);
}

/// The contract sets no limits on the key: a long one works like any other, and an empty
/// one is no key.
#[tokio::test]
async fn any_key_is_usable_and_an_empty_one_is_none() {
    let app = TestApp::spawn().await;
    let long = "k".repeat(1000);
    let (status, first) = post_with_key(&app, "/api/v1/app", &long, json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = post_with_key(&app, "/api/v1/app", &long, json!({"name": "x"})).await;
    assert_eq!((status, &again), (StatusCode::CREATED, &first));
    for _ in 0..2 {
        let (status, _) = post_with_key(&app, "/api/v1/app", "", json!({"name": "y"})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(app.list_all("/api/v1/app").await.len(), 3);
}

/// The key records themselves, on both backends (SQLite writes them in its batching writer,
/// PostgreSQL with statements of its own).
mod store {
    use std::sync::Arc;

    use std::collections::BTreeMap;

    use chrono::TimeDelta;
    use hookd::domain::time::now;
    use hookd::domain::{AppId, Message};
    use hookd::store::{
        Cursor, IdempotencyClaim, KeyedWrite, MessageFilter, NewApplication, NewMessage, Order,
        PageQuery, Store, StoreError, StoredResponse,
    };

    use crate::queue::{new_message, postgres, sqlite};

    conformance!(
        a_key_is_held_once_then_answers_with_its_response,
        a_released_key_runs_again,
        a_key_held_past_its_expiry_is_taken_over,
        concurrent_claims_of_one_key_let_one_through,
        a_message_claims_its_key_and_stores_its_response,
        a_message_whose_key_is_taken_is_not_written,
        a_refused_message_leaves_its_key_free,
        concurrent_messages_with_one_key_write_one,
        many_keys_at_once_are_each_claimed_and_completed_once,
    );

    async fn app(store: &dyn Store) -> AppId {
        store
            .insert_application(NewApplication {
                uid: None,
                name: "keys".into(),
                rate_limit: None,
                metadata: BTreeMap::new(),
            })
            .await
            .unwrap()
            .id
    }

    /// A message with `key`, whose stored response names the message.
    fn keyed(app: &AppId, key: &str) -> NewMessage {
        NewMessage {
            key: Some(KeyedWrite {
                key: key.into(),
                expired_before: a_minute_ago(),
                respond: Arc::new(|m: &Message| StoredResponse {
                    status: 202,
                    body: m.id.to_string().into_bytes(),
                }),
            }),
            ..new_message(app, "{}", None)
        }
    }

    async fn messages(store: &dyn Store, app: &AppId) -> usize {
        let page = PageQuery {
            limit: 100,
            cursor: Cursor::Start,
            order: Order::Descending,
        };
        store
            .list_messages(app, &MessageFilter::default(), &page)
            .await
            .unwrap()
            .len()
    }

    async fn a_message_claims_its_key_and_stores_its_response(store: Arc<dyn Store>) {
        let app = app(&*store).await;
        let written = store.enqueue_message(keyed(&app, "m:1")).await.unwrap();
        let response = StoredResponse {
            status: 202,
            body: written.message.id.to_string().into_bytes(),
        };
        assert_eq!(written.response.as_ref(), Some(&response));
        assert_eq!(
            store
                .claim_idempotency_key("m:1", a_minute_ago())
                .await
                .unwrap(),
            IdempotencyClaim::Completed(response)
        );
        // Without a key, nothing is stored.
        let plain = store
            .enqueue_message(new_message(&app, "{}", None))
            .await
            .unwrap();
        assert!(plain.response.is_none());
    }

    async fn a_message_whose_key_is_taken_is_not_written(store: Arc<dyn Store>) {
        let app = app(&*store).await;
        let first = store.enqueue_message(keyed(&app, "m:1")).await.unwrap();
        match store.enqueue_message(keyed(&app, "m:1")).await {
            Err(StoreError::KeyTaken(IdempotencyClaim::Completed(stored))) => {
                assert_eq!(stored.body, first.message.id.to_string().into_bytes());
            }
            other => panic!("{other:?}"),
        }
        // Held by a request still running.
        assert_eq!(
            store
                .claim_idempotency_key("m:2", a_minute_ago())
                .await
                .unwrap(),
            IdempotencyClaim::Claimed
        );
        assert!(matches!(
            store.enqueue_message(keyed(&app, "m:2")).await,
            Err(StoreError::KeyTaken(IdempotencyClaim::InProgress))
        ));
        assert_eq!(messages(&*store, &app).await, 1);
    }

    async fn a_refused_message_leaves_its_key_free(store: Arc<dyn Store>) {
        let unknown = AppId::generate();
        assert!(matches!(
            store.enqueue_message(keyed(&unknown, "m:1")).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            store
                .claim_idempotency_key("m:1", a_minute_ago())
                .await
                .unwrap(),
            IdempotencyClaim::Claimed
        );
    }

    async fn concurrent_messages_with_one_key_write_one(store: Arc<dyn Store>) {
        let app = app(&*store).await;
        let writes = (0..16).map(|_| {
            let (store, app) = (store.clone(), app.clone());
            tokio::spawn(async move { store.enqueue_message(keyed(&app, "m:same")).await })
        });
        let mut written = 0;
        for write in futures::future::join_all(writes).await {
            match write.unwrap() {
                Ok(_) => written += 1,
                Err(StoreError::KeyTaken(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(written, 1);
        assert_eq!(messages(&*store, &app).await, 1);
    }

    fn a_minute_ago() -> hookd::domain::Timestamp {
        now() - TimeDelta::minutes(1)
    }

    async fn a_key_is_held_once_then_answers_with_its_response(store: Arc<dyn Store>) {
        let key = "/api/v1/app:k1";
        let first = store.claim_idempotency_key(key, a_minute_ago()).await;
        assert_eq!(first.unwrap(), IdempotencyClaim::Claimed);
        let second = store.claim_idempotency_key(key, a_minute_ago()).await;
        assert_eq!(second.unwrap(), IdempotencyClaim::InProgress);
        let response = StoredResponse {
            status: 201,
            body: br#"{"id":"app_1"}"#.to_vec(),
        };
        store
            .complete_idempotency_key(key, &response)
            .await
            .unwrap();
        let third = store.claim_idempotency_key(key, a_minute_ago()).await;
        assert_eq!(third.unwrap(), IdempotencyClaim::Completed(response));
        // Another key is another request.
        let other = store
            .claim_idempotency_key("/api/v1/app:k2", a_minute_ago())
            .await;
        assert_eq!(other.unwrap(), IdempotencyClaim::Claimed);
    }

    async fn a_released_key_runs_again(store: Arc<dyn Store>) {
        let key = "/api/v1/app:k1";
        assert_eq!(
            store
                .claim_idempotency_key(key, a_minute_ago())
                .await
                .unwrap(),
            IdempotencyClaim::Claimed
        );
        store.release_idempotency_key(key).await.unwrap();
        assert_eq!(
            store
                .claim_idempotency_key(key, a_minute_ago())
                .await
                .unwrap(),
            IdempotencyClaim::Claimed
        );
        // A completed key is not released by a late release.
        let response = StoredResponse {
            status: 202,
            body: b"{}".to_vec(),
        };
        store
            .complete_idempotency_key(key, &response)
            .await
            .unwrap();
        store.release_idempotency_key(key).await.unwrap();
        assert_eq!(
            store
                .claim_idempotency_key(key, a_minute_ago())
                .await
                .unwrap(),
            IdempotencyClaim::Completed(response)
        );
    }

    async fn a_key_held_past_its_expiry_is_taken_over(store: Arc<dyn Store>) {
        let key = "/api/v1/app:k1";
        assert_eq!(
            store
                .claim_idempotency_key(key, a_minute_ago())
                .await
                .unwrap(),
            IdempotencyClaim::Claimed
        );
        // Every claim started before a second from now counts as expired: its request died.
        let later = now() + TimeDelta::seconds(1);
        assert_eq!(
            store.claim_idempotency_key(key, later).await.unwrap(),
            IdempotencyClaim::Claimed
        );
        // The new holder's claim is fresh.
        assert_eq!(
            store
                .claim_idempotency_key(key, a_minute_ago())
                .await
                .unwrap(),
            IdempotencyClaim::InProgress
        );
    }

    async fn concurrent_claims_of_one_key_let_one_through(store: Arc<dyn Store>) {
        let claims = (0..16).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_idempotency_key("/api/v1/app:same", a_minute_ago())
                    .await
                    .unwrap()
            })
        });
        let mut held = 0;
        for claim in futures::future::join_all(claims).await {
            match claim.unwrap() {
                IdempotencyClaim::Claimed => held += 1,
                IdempotencyClaim::InProgress => {}
                IdempotencyClaim::Completed(_) => panic!("nothing completed the key"),
            }
        }
        assert_eq!(held, 1);
    }

    /// Claims arriving together (one batch on PostgreSQL): new keys, a key two requests
    /// carry, and a key completed before; then their responses, stored together too.
    async fn many_keys_at_once_are_each_claimed_and_completed_once(store: Arc<dyn Store>) {
        let done = StoredResponse {
            status: 200,
            body: b"before".to_vec(),
        };
        assert_eq!(
            store
                .claim_idempotency_key("k:done", a_minute_ago())
                .await
                .unwrap(),
            IdempotencyClaim::Claimed
        );
        store
            .complete_idempotency_key("k:done", &done)
            .await
            .unwrap();

        let mut keys: Vec<String> = (0..40).map(|i| format!("k:{i}")).collect();
        keys.push("k:7".into());
        keys.push("k:done".into());
        let claims = keys.iter().cloned().map(|key| {
            let store = store.clone();
            tokio::spawn(async move {
                let claim = store.claim_idempotency_key(&key, a_minute_ago()).await;
                (key, claim.unwrap())
            })
        });
        let mut held = BTreeMap::new();
        for claim in futures::future::join_all(claims).await {
            let (key, claim) = claim.unwrap();
            match claim {
                IdempotencyClaim::Claimed => *held.entry(key).or_insert(0) += 1,
                IdempotencyClaim::InProgress => assert_eq!(key, "k:7"),
                IdempotencyClaim::Completed(response) => {
                    assert_eq!((key.as_str(), response), ("k:done", done.clone()));
                }
            }
        }
        assert_eq!(held.len(), 40, "{held:?}");
        assert!(held.values().all(|&n| n == 1), "{held:?}");

        let completions = held.keys().cloned().map(|key| {
            let store = store.clone();
            tokio::spawn(async move {
                let response = StoredResponse {
                    status: 202,
                    body: key.clone().into_bytes(),
                };
                store
                    .complete_idempotency_key(&key, &response)
                    .await
                    .unwrap();
            })
        });
        for completion in futures::future::join_all(completions).await {
            completion.unwrap();
        }
        for key in held.keys() {
            assert_eq!(
                store
                    .claim_idempotency_key(key, a_minute_ago())
                    .await
                    .unwrap(),
                IdempotencyClaim::Completed(StoredResponse {
                    status: 202,
                    body: key.clone().into_bytes(),
                })
            );
        }
    }
}

/// Keys stored before SQLite kept them in arrival order (migration 0024) keep their state:
/// a completed one still replays its response, one in progress still holds its request.
#[tokio::test]
async fn keys_stored_before_the_arrival_order_table_are_kept() {
    use std::borrow::Cow;

    use hookd::store::sqlite::SqliteStore;
    use hookd::store::{IdempotencyClaim, IdempotencyStore, StoredResponse};
    use sqlx::Executor;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut before = sqlx::migrate!("migrations/sqlite");
    before.migrations = Cow::Owned(
        before
            .migrations
            .iter()
            .filter(|m| m.version < 24)
            .cloned()
            .collect(),
    );
    before.run(&pool).await.unwrap();
    let now = chrono::Utc::now();
    let micros = now.timestamp_micros();
    pool.execute(
        format!(
            "INSERT INTO idempotency_key (key, state, status, body, started_at) VALUES \
             ('done', 1, 202, X'7B7D', {micros}), ('running', 0, NULL, NULL, {micros})"
        )
        .as_str(),
    )
    .await
    .unwrap();
    pool.close().await;

    let store = SqliteStore::open_path(&file, 1).await.unwrap();
    let an_hour_ago = now - chrono::Duration::hours(1);
    assert_eq!(
        store
            .claim_idempotency_key("done", an_hour_ago)
            .await
            .unwrap(),
        IdempotencyClaim::Completed(StoredResponse {
            status: 202,
            body: b"{}".to_vec()
        })
    );
    assert_eq!(
        store
            .claim_idempotency_key("running", an_hour_ago)
            .await
            .unwrap(),
        IdempotencyClaim::InProgress
    );
    assert_eq!(
        store
            .claim_idempotency_key("new", an_hour_ago)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    // The key is still unique: a second claim of a new key finds it held.
    assert_eq!(
        store
            .claim_idempotency_key("new", an_hour_ago)
            .await
            .unwrap(),
        IdempotencyClaim::InProgress
    );
    store.close().await;
}
