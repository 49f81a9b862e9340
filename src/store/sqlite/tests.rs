//! What only the SQLite store does: closing its writer thread, and the indexes its queries
//! rely on. The behaviour both backends share is in `tests/it/queue.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use super::SqliteStore;
use crate::domain::{
    AppId, AppKey, Endpoint, EndpointHeaders, EndpointUrl, EventTypeName, MessageKey, Payload,
    SigningSecret, Subscription,
};
use crate::store::{
    ApplicationStore, EndpointStore, MessageStore, NewApplication, NewEndpoint, NewMessage,
    QueueStore, StoreError,
};

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open_path(path, 1).await.unwrap()
}

async fn app(store: &SqliteStore) -> AppId {
    let app = store
        .insert_application(NewApplication {
            uid: None,
            name: "s".into(),
            rate_limit: None,
            metadata: BTreeMap::new(),
        })
        .await
        .unwrap();
    app.id
}

async fn endpoint(store: &SqliteStore, app: &AppId) -> Endpoint {
    store
        .insert_endpoint(NewEndpoint {
            app_id: app.clone(),
            uid: None,
            url: EndpointUrl::parse("https://example.com/s").unwrap(),
            description: String::new(),
            disabled: false,
            rate_limit: None,
            subscription: Subscription::default(),
            metadata: BTreeMap::new(),
            headers: EndpointHeaders::default(),
            secret: SigningSecret::generate(),
            signature: Default::default(),
            auto_disable_after_failures: None,
            auto_disable_after_secs: None,
            retry_policy: None,
            ordering: Default::default(),
        })
        .await
        .unwrap()
}

fn message(app: &AppId) -> NewMessage {
    let raw = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    NewMessage {
        app: AppKey::Id(app.clone()),
        create_app: None,
        event_type: EventTypeName::parse("a").unwrap(),
        event_id: None,
        channels: None,
        payload: Payload::parse(&raw, 64).unwrap(),
        payload_retention: None,
        deliver_at: None,
        priority: None,
        only_endpoint: None,
        direct: None,
        key: None,
    }
}

#[tokio::test]
async fn close_ends_the_writer_and_the_file_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = open(&path).await;
    let app = app(&store).await;
    let accepted = store.enqueue_message(message(&app)).await.unwrap();
    store.close().await;
    assert!(matches!(
        store.enqueue_message(message(&app)).await,
        Err(StoreError::Unavailable(_))
    ));

    let reopened = open(&path).await;
    let found = reopened
        .get_message(&app, &MessageKey::Id(accepted.message.id.clone()))
        .await
        .unwrap();
    assert_eq!(found.map(|m| m.id), Some(accepted.message.id));
    reopened.enqueue_message(message(&app)).await.unwrap();
    reopened.close().await;
}

/// The writer thread writes the jobs that queue during a batch straight after it, without
/// letting go of the write lock; it must still let go often enough that management writes
/// (endpoints, here) get through while messages keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_writes_get_through_a_steady_stream_of_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&dir.path().join("s.db")).await);
    let app = app(&store).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (store, app, stop) = (store.clone(), app.clone(), stop.clone());
        producers.spawn(async move {
            let mut written = 0u64;
            while !stop.is_cancelled() {
                store.enqueue_message(message(&app)).await.unwrap();
                written += 1;
            }
            written
        });
    }
    for _ in 0..20 {
        tokio::time::timeout(std::time::Duration::from_secs(10), endpoint(&store, &app))
            .await
            .expect("an endpoint written within 10 s while messages stream in");
    }
    stop.cancel();
    let mut written = 0;
    while let Some(n) = producers.join_next().await {
        written += n.unwrap();
    }
    assert!(written > 0, "the messages streamed meanwhile");
}

/// The steps of `sql`'s query plan on a fresh store.
async fn plan_steps(sql: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
        .fetch_all(&store.reader)
        .await
        .unwrap();
    store.close().await;
    plan.into_iter().map(|(_, _, _, step)| step).collect()
}

/// Parking an endpoint's deliveries must not scan every delivery it ever had: the query
/// repeats the predicate of `delivery_due_by_endpoint` so SQLite can search that index. (A
/// delivery unparked reads its message's `deliverAt` by the message's key.)
#[tokio::test]
async fn parking_searches_only_the_undelivered() {
    let sql = crate::store::queries::PARK_OR_UNPARK;
    assert_eq!(
        plan_steps(sql).await,
        [
            "SEARCH delivery USING INDEX delivery_due_by_endpoint (endpoint_id=?)",
            "CORRELATED SCALAR SUBQUERY 2",
            "SEARCH e USING INDEX sqlite_autoindex_endpoint_1 (id=?)",
            "CORRELATED SCALAR SUBQUERY 1",
            "SEARCH m USING INDEX sqlite_autoindex_message_1 (id=?)"
        ],
        "{sql}"
    );
}

/// Promoting a FIFO line's next delivery reads the first of its parked deliveries by the
/// `delivery_parked` index, not the endpoint's whole backlog.
#[tokio::test]
async fn a_fifo_promotion_reads_one_parked_delivery() {
    let sql = crate::store::fifo::PROMOTE;
    assert_eq!(
        plan_steps(sql).await,
        [
            "SEARCH endpoint USING INDEX sqlite_autoindex_endpoint_1 (id=?)",
            "CORRELATED SCALAR SUBQUERY 2",
            "SEARCH h USING INTEGER PRIMARY KEY (rowid=?)",
            "SCALAR SUBQUERY 1",
            "SEARCH d USING INDEX delivery_parked (endpoint_id=?)"
        ],
        "{sql}"
    );
}

/// A management write on a sqlx connection must not checkpoint the WAL at SQLite's default
/// length while the batch writer lets it grow longer.
#[tokio::test]
async fn every_connection_checkpoints_at_the_same_wal_length() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.db")).await;
    for pool in [&store.writer, &store.reader] {
        let pages: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(pages, i64::from(super::WAL_AUTOCHECKPOINT_PAGES));
    }
    let writer = super::connection::open(&dir.path().join("s.db")).unwrap();
    let pages: i64 = writer
        .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
        .unwrap();
    assert_eq!(pages, i64::from(super::WAL_AUTOCHECKPOINT_PAGES));
    store.close().await;
}
