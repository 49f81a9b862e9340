//! Keyset pagination while other requests insert into the same list.
//!
//! The pager waits for at least one insert to complete between two pages, so inserts land
//! in the middle of every walk, not just by luck of scheduling. Ids are assigned in commit
//! order, so a walk must never repeat or skip a pre-existing item; on an ascending list, an
//! item committed before the last page was requested must show up; on a newest-first list,
//! an item committed before the first page was requested must show up; and a client that
//! keeps polling with its last `iterator` sees every new item exactly once.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::helpers::{TestApp, encode, ids};

const EXISTING: usize = 60;
const INSERTED: usize = 160;
const PAGE: usize = 7;
/// Concurrent inserting tasks, so that inserts also race each other for the store.
const WRITERS: usize = 8;

/// Creates `INSERTED` items by POSTing `body` to `path` from `WRITERS` concurrent tasks,
/// announcing each on `progress`; returns their ids with the time each answer arrived.
fn insert_in_background(
    app: Arc<TestApp>,
    path: String,
    body: Value,
    progress: watch::Sender<usize>,
) -> tokio::task::JoinHandle<Vec<(String, Instant)>> {
    let progress = Arc::new(progress);
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (app, path, body, progress) =
                (app.clone(), path.clone(), body.clone(), progress.clone());
            tokio::spawn(async move {
                let mut created = Vec::new();
                for _ in 0..INSERTED / WRITERS {
                    let (status, item) = app.post(&path, Some(body.clone())).await;
                    assert!(status.is_success(), "{status}: {item}");
                    created.push((item["id"].as_str().unwrap().to_owned(), Instant::now()));
                    progress.send_modify(|n| *n += 1);
                }
                created
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut created = Vec::new();
        for writer in writers {
            created.extend(writer.await.unwrap());
        }
        created
    })
}

/// A walk through `path` with `limit=PAGE`.
struct Walk {
    seen: Vec<String>,
    first_request_at: Instant,
    last_request_at: Instant,
}

#[derive(Clone, Copy, PartialEq)]
enum Until {
    /// The first page that says `done`.
    Done,
    /// A page that says `done` and was asked for after every insert finished: a poller that
    /// keeps coming back with the last `iterator`.
    DoneAfterInserts,
}

/// Follows `iterator` until `until`, waiting for an insert (while they go on) before each
/// page.
async fn walk(
    app: &TestApp,
    path: &str,
    mut progress: watch::Receiver<usize>,
    until: Until,
) -> Walk {
    let mut seen = Vec::new();
    let mut iterator: Option<String> = None;
    let mut first_request_at = None;
    let mut at_the_end = false;
    loop {
        // Err: every insert has finished, there is nothing more to wait for. A poller that
        // reached the end asks again at once, to be there when an insert lands.
        let inserts_finished = if at_the_end {
            progress.has_changed().is_err()
        } else {
            progress.changed().await.is_err()
        };
        let page_path = match &iterator {
            None => format!("{path}?limit={PAGE}"),
            Some(it) => format!("{path}?limit={PAGE}&iterator={}", encode(it)),
        };
        let requested_at = Instant::now();
        first_request_at.get_or_insert(requested_at);
        let (status, page) = app.get(&page_path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let data = ids(page["data"].as_array().unwrap());
        assert!(data.len() <= PAGE);
        seen.extend(data);
        let done = page["done"] == json!(true);
        at_the_end = done;
        if done && (until == Until::Done || inserts_finished) {
            return Walk {
                seen,
                first_request_at: first_request_at.unwrap(),
                last_request_at: requested_at,
            };
        }
        if let Some(next) = page["iterator"].as_str() {
            iterator = Some(next.to_owned());
        }
    }
}

/// Checks what every walk must satisfy, whatever the order.
fn assert_complete(seen: &[String], existing: &[String], created: &[(String, Instant)]) {
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an item was listed twice");
    for id in existing {
        assert!(unique.contains(id), "pre-existing {id} was skipped");
    }
    let known: HashSet<&String> = existing
        .iter()
        .chain(created.iter().map(|(id, _)| id))
        .collect();
    assert!(unique.is_subset(&known), "an unknown item was listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_under_concurrent_inserts_of_applications() {
    let app = Arc::new(TestApp::spawn().await);
    let bodies = (0..EXISTING).map(|i| json!({"name": format!("existing {i}")}));
    let existing = ids(&join_all(bodies.map(|b| app.create_app(b))).await);

    let (progress, watcher) = watch::channel(0);
    let inserter = insert_in_background(
        app.clone(),
        "/api/v1/app".into(),
        json!({"name": "new"}),
        progress,
    );
    let walk = walk(&app, "/api/v1/app", watcher, Until::Done).await;
    let created = inserter.await.unwrap();

    assert_complete(&walk.seen, &existing, &created);
    assert!(
        walk.seen.windows(2).all(|w| w[0] < w[1]),
        "ids are not strictly increasing: {:?}",
        walk.seen
    );
    let committed_before_end: Vec<&String> = created
        .iter()
        .filter(|(_, at)| *at < walk.last_request_at)
        .map(|(id, _)| id)
        .collect();
    assert!(
        !committed_before_end.is_empty(),
        "no insert overlapped the walk"
    );
    for id in committed_before_end {
        assert!(
            walk.seen.contains(id),
            "{id}, created before the last page, was skipped"
        );
    }
}

/// A client polling the end of a list with its last `iterator` sees every new item once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_with_the_last_iterator_sees_every_concurrent_insert_once() {
    let app = Arc::new(TestApp::spawn().await);
    let bodies = (0..EXISTING).map(|i| json!({"name": format!("existing {i}")}));
    let existing = ids(&join_all(bodies.map(|b| app.create_app(b))).await);

    let (progress, watcher) = watch::channel(0);
    let inserter = insert_in_background(
        app.clone(),
        "/api/v1/app".into(),
        json!({"name": "new"}),
        progress,
    );
    let walk = walk(&app, "/api/v1/app", watcher, Until::DoneAfterInserts).await;
    let created = inserter.await.unwrap();

    assert!(walk.seen.windows(2).all(|w| w[0] < w[1]), "{:?}", walk.seen);
    let mut expected: Vec<String> = existing
        .into_iter()
        .chain(created.into_iter().map(|(id, _)| id))
        .collect();
    expected.sort();
    let skipped: Vec<&String> = expected
        .iter()
        .filter(|id| !walk.seen.contains(id))
        .collect();
    assert!(skipped.is_empty(), "the poller never saw {skipped:?}");
    assert_eq!(walk.seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_under_concurrent_inserts_of_messages() {
    let app = Arc::new(TestApp::spawn().await);
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let body = json!({"eventType": "t", "payload": {}});
    let existing =
        ids(&join_all((0..EXISTING).map(|_| app.create_message("owner", body.clone()))).await);

    let (progress, watcher) = watch::channel(0);
    let inserter =
        insert_in_background(app.clone(), "/api/v1/app/owner/msg".into(), body, progress);
    let walk = walk(&app, "/api/v1/app/owner/msg", watcher, Until::Done).await;
    let created = inserter.await.unwrap();

    assert_complete(&walk.seen, &existing, &created);
    assert!(
        walk.seen.windows(2).all(|w| w[0] > w[1]),
        "ids are not strictly decreasing (newest first): {:?}",
        walk.seen
    );
    let committed_before_start = created.iter().filter(|(_, at)| *at < walk.first_request_at);
    for (id, _) in committed_before_start {
        assert!(
            walk.seen.contains(id),
            "{id}, created before the first page, was skipped"
        );
    }
    assert!(
        created.iter().any(|(_, at)| *at < walk.last_request_at),
        "no insert overlapped the walk"
    );
}
