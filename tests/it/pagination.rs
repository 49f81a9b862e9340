//! `limit` / `iterator` / `prevIterator` / `done` / `order` on every list.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_validation_error, encode, ids};

/// A page of `path` (which carries its query) as (ids, iterator, prevIterator, done).
async fn page(app: &TestApp, path: &str) -> (Vec<String>, Value, Value, bool) {
    let (status, page) = app.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {page}");
    let object = page.as_object().unwrap();
    // The SDK requires these keys, even when their value is null.
    for key in ["data", "iterator", "prevIterator", "done"] {
        assert!(object.contains_key(key), "{path}: no {key} in {page}");
    }
    (
        ids(page["data"].as_array().unwrap()),
        page["iterator"].clone(),
        page["prevIterator"].clone(),
        page["done"].as_bool().unwrap(),
    )
}

async fn apps(app: &TestApp, n: usize) -> Vec<String> {
    let mut created = Vec::new();
    for i in 0..n {
        created.push(app.create_app(json!({"name": format!("app {i}")})).await);
    }
    ids(&created)
}

/// `n` messages to `owner`, sent concurrently; their ids, oldest first.
async fn messages(app: &TestApp, n: usize) -> Vec<String> {
    let body = json!({"eventType": "t", "payload": {}});
    let sent = join_all((0..n).map(|_| app.create_message("owner", body.clone()))).await;
    let mut ids = ids(&sent);
    ids.sort();
    ids
}

#[tokio::test]
async fn an_empty_list_is_done_with_null_iterators() {
    let app = TestApp::spawn().await;
    let (data, iterator, prev, done) = page(&app, "/api/v1/app").await;
    assert!(data.is_empty());
    assert_eq!((iterator, prev, done), (json!(null), json!(null), true));
}

#[tokio::test]
async fn following_iterator_visits_every_item_once() {
    let app = TestApp::spawn().await;
    let a = apps(&app, 5).await;

    let (data, iterator, prev, done) = page(&app, "/api/v1/app?limit=2").await;
    assert_eq!(data, a[0..2]);
    assert_eq!(iterator, json!(a[1]));
    assert_eq!(prev, json!(format!("-{}", a[0])));
    assert!(!done);

    let (data, iterator, prev, done) =
        page(&app, &format!("/api/v1/app?limit=2&iterator={}", a[1])).await;
    assert_eq!(data, a[2..4]);
    assert_eq!(iterator, json!(a[3]));
    assert_eq!(prev, json!(format!("-{}", a[2])));
    assert!(!done);

    let (data, iterator, _, done) =
        page(&app, &format!("/api/v1/app?limit=2&iterator={}", a[3])).await;
    assert_eq!(data, a[4..]);
    assert_eq!(iterator, json!(a[4]));
    assert!(done);

    // Past the end: empty, done, and the iterator is kept so a poller can come back.
    let (data, iterator, _, done) =
        page(&app, &format!("/api/v1/app?limit=2&iterator={}", a[4])).await;
    assert!(data.is_empty());
    assert_eq!(iterator, json!(a[4]));
    assert!(done);
    let later = apps(&app, 1).await;
    let (data, _, _, _) = page(&app, &format!("/api/v1/app?limit=2&iterator={}", a[4])).await;
    assert_eq!(data, later);
}

#[tokio::test]
async fn prev_iterator_pages_backwards() {
    let app = TestApp::spawn().await;
    let a = apps(&app, 5).await;
    let back_from = |i: usize| {
        format!(
            "/api/v1/app?limit=2&iterator={}",
            encode(&format!("-{}", a[i]))
        )
    };

    let (data, iterator, prev, done) = page(&app, &back_from(4)).await;
    assert_eq!(data, a[2..4], "the page before the last one, in list order");
    assert_eq!(iterator, json!(a[3]));
    assert_eq!(prev, json!(format!("-{}", a[2])));
    assert!(!done, "there is more before it");

    let (data, _, _, done) = page(&app, &back_from(2)).await;
    assert_eq!(data, a[0..2]);
    assert!(done, "nothing before the first page");
}

#[tokio::test]
async fn order_descending_lists_applications_newest_first() {
    let app = TestApp::spawn().await;
    let mut a = apps(&app, 5).await;
    a.reverse();
    let (data, iterator, _, done) = page(&app, "/api/v1/app?order=descending&limit=2").await;
    assert_eq!(data, a[0..2]);
    assert!(!done);
    let next = format!(
        "/api/v1/app?order=descending&limit=2&iterator={}",
        iterator.as_str().unwrap()
    );
    let (data, _, _, _) = page(&app, &next).await;
    assert_eq!(data, a[2..4]);
    assert_eq!(
        ids(&app.list_all("/api/v1/app?order=descending&limit=2").await),
        a
    );
    let (data, _, _, _) = page(&app, "/api/v1/app?order=ascending").await;
    a.reverse();
    assert_eq!(data, a);
}

#[tokio::test]
async fn messages_page_newest_first() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let mut m = messages(&app, 5).await;
    m.reverse();
    let (data, iterator, _, done) = page(&app, "/api/v1/app/owner/msg?limit=2").await;
    assert_eq!(data, m[0..2]);
    assert_eq!(iterator, json!(m[1]));
    assert!(!done);
    assert_eq!(ids(&app.list_all("/api/v1/app/owner/msg?limit=2").await), m);
}

#[tokio::test]
async fn prev_iterator_pages_backwards_through_newest_first_messages() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let mut m = messages(&app, 5).await;
    m.reverse();
    let (first, iterator, _, _) = page(&app, "/api/v1/app/owner/msg?limit=2").await;
    let next = format!(
        "/api/v1/app/owner/msg?limit=2&iterator={}",
        iterator.as_str().unwrap()
    );
    let (second, _, prev, done) = page(&app, &next).await;
    assert_eq!(second, m[2..4]);
    assert!(!done);
    assert_eq!(prev, json!(format!("-{}", m[2])));
    let back = format!(
        "/api/v1/app/owner/msg?limit=2&iterator={}",
        encode(prev.as_str().unwrap())
    );
    let (again, _, _, done) = page(&app, &back).await;
    assert_eq!(again, first, "back to the first page, newest first");
    assert!(done);
}

#[tokio::test]
async fn event_types_page_by_name() {
    let app = TestApp::spawn().await;
    for name in ["e", "d", "c", "b", "a"] {
        let (status, _) = app
            .post(
                "/api/v1/event-type",
                Some(json!({"name": name, "description": ""})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, first) = app.get("/api/v1/event-type?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["data"][1]["name"], "b");
    assert_eq!(first["iterator"], "b");
    assert_eq!(first["prevIterator"], "-a");
    let (_, second) = app.get("/api/v1/event-type?limit=2&iterator=b").await;
    let names: Vec<&str> = second["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c", "d"]);
    assert_eq!(second["done"], false);
}

/// The contract allows any whole number from 0: 0 is read as 1, and numbers of any size as
/// the largest page. Anything else is a 422.
#[tokio::test]
async fn limit_is_any_whole_number() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    app.create_app(json!({"name": "Second"})).await;
    for (path, items) in [
        ("/api/v1/app?limit=0", 1),
        ("/api/v1/app?limit=99999999999999999999999", 2),
        ("/api/v1/app/owner/endpoint?limit=0", 0),
        ("/api/v1/app/owner/msg?limit=0", 0),
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["data"].as_array().map(Vec::len), Some(items), "{path}");
    }
    for path in ["/api/v1/app?limit=-1", "/api/v1/event-type?limit=x"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_validation_error(&body, &["query", "limit"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_defaults_to_50_and_is_lowered_to_250() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let m = messages(&app, 260).await;

    let (data, _, _, done) = page(&app, "/api/v1/app/owner/msg").await;
    assert_eq!(data.len(), 50);
    assert!(!done);
    let (data, iterator, _, done) = page(&app, "/api/v1/app/owner/msg?limit=1000").await;
    assert_eq!(data.len(), 250);
    assert!(!done);
    let rest = format!(
        "/api/v1/app/owner/msg?limit=1000&iterator={}",
        iterator.as_str().unwrap()
    );
    let (data, _, _, done) = page(&app, &rest).await;
    assert_eq!(data.len(), 10);
    assert!(done);
    assert_eq!(
        ids(&app.list_all("/api/v1/app/owner/msg?limit=1000").await).len(),
        m.len()
    );
}
