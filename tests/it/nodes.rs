//! The node table on PostgreSQL: heartbeats, a dead node's claims given back once, a live
//! (or only slow) node's claims never corrupted, a clean leave. Several stores on one
//! database stand for several nodes. (The same with real processes, SIGKILL and SIGSTOP:
//! `tests/cluster`.)

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use hookd::domain::time::now;
use hookd::domain::{AppId, MessageId};
use hookd::store::postgres::{PgStore, PoolSettings};
use hookd::store::{
    AttemptFilter, Cursor, NextStep, NodeBeat, NodeReport, Order, PageQuery, Store,
};

use crate::pg::TestDatabase;
use crate::queue::{limits, none, record, seed, sqlite};

const DEAD_AFTER: Duration = Duration::from_millis(800);

async fn node(database: &TestDatabase) -> Arc<dyn Store> {
    let store = PgStore::connect(
        &database.url,
        PoolSettings {
            min_connections: 1,
            max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
        },
    )
    .await
    .unwrap();
    Arc::new(store)
}

async fn beat(store: &dyn Store, sweep: bool) -> NodeReport {
    store
        .node_heartbeat(&NodeBeat {
            address: "127.0.0.1:1".into(),
            version: "test".into(),
            started: now(),
            now: now(),
            dead_after: DEAD_AFTER,
            sweep,
        })
        .await
        .unwrap()
}

async fn attempts_of(store: &dyn Store, app: &AppId, msg: &MessageId) -> usize {
    let filter = AttemptFilter {
        msg_id: Some(msg.clone()),
        ..AttemptFilter::default()
    };
    let page = PageQuery {
        limit: 50,
        cursor: Cursor::Start,
        order: Order::Descending,
    };
    store
        .list_attempts(app, &filter, &page)
        .await
        .unwrap()
        .len()
}

/// Nodes that keep beating keep their claims, however often the others look for dead ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_nodes_claims_are_never_taken() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let (a, b) = (node(&database).await, node(&database).await);
    assert_ne!(a.node_id(), b.node_id());
    seed(a.as_ref(), 3).await;
    let t = now();
    let lease = t + TimeDelta::seconds(60);
    let claims = a.claim_due(t, lease, &limits(10, &none())).await.unwrap();
    assert_eq!(claims.len(), 3);
    // Three times the dead-after period, both beating every 200 ms, B sweeping each time.
    for _ in 0..12 {
        beat(a.as_ref(), true).await;
        let report = beat(b.as_ref(), true).await;
        assert_eq!(
            (report.live, report.dead.len(), report.released),
            (2, 0, 0),
            "{report:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let taken = b
        .claim_due(now(), lease, &limits(10, &none()))
        .await
        .unwrap();
    assert!(taken.is_empty(), "a live node's claims were taken");
    // And A's records still move its deliveries on.
    a.record_attempt(record(&claims[0], NextStep::Delivered))
        .await
        .unwrap();
    let counts = a
        .message_delivery_counts(&claims[0].message.id)
        .await
        .unwrap();
    assert_eq!((counts.sending, counts.success), (0, 1));
}

/// A node that stops beating has its claims given back by one node (not both of those that
/// look at once); if it was only slow, its late record is logged but moves nothing, so the
/// delivery ends as the node that took it over recorded it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_nodes_claims_are_given_back_once_and_its_late_record_moves_nothing() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let (a, b, c) = (
        node(&database).await,
        node(&database).await,
        node(&database).await,
    );
    let endpoint = seed(a.as_ref(), 3).await;
    let t = now();
    let lease = t + TimeDelta::seconds(60);
    let claims = a.claim_due(t, lease, &limits(10, &none())).await.unwrap();
    assert_eq!(claims.len(), 3);
    beat(a.as_ref(), false).await;
    assert_eq!(beat(b.as_ref(), true).await.live, 2);

    // A falls silent (paused, cut off) for longer than DEAD_AFTER; B and C keep beating.
    tokio::time::sleep(DEAD_AFTER + Duration::from_millis(300)).await;
    let (from_b, from_c) = tokio::join!(beat(b.as_ref(), true), beat(c.as_ref(), true));
    let a_id = a.node_id().unwrap().to_owned();
    let finders: Vec<&NodeReport> = [&from_b, &from_c]
        .into_iter()
        .filter(|r| !r.dead.is_empty())
        .collect();
    assert_eq!(finders.len(), 1, "{from_b:?} {from_c:?}");
    assert_eq!(finders[0].dead, [a_id]);
    assert_eq!(finders[0].released, 3);
    assert_eq!(
        from_b.released + from_c.released,
        3,
        "claims given back twice"
    );

    // Due at once, well before A's lease ends.
    let retaken = b
        .claim_due(now(), now() + TimeDelta::seconds(60), &limits(10, &none()))
        .await
        .unwrap();
    assert_eq!(retaken.len(), 3);
    let first = retaken.iter().find(|d| d.id == claims[0].id).unwrap();

    // A was only slow: its attempt ends after B's, or before it; either way it is logged
    // and the delivery ends as B recorded it.
    b.record_attempt(record(first, NextStep::Delivered))
        .await
        .unwrap();
    a.record_attempt(record(&claims[0], NextStep::RetryAt(now())))
        .await
        .unwrap();
    let msg = &claims[0].message.id;
    let counts = a.message_delivery_counts(msg).await.unwrap();
    assert_eq!((counts.success, counts.pending, counts.sending), (1, 0, 0));
    assert_eq!(attempts_of(a.as_ref(), &endpoint.app_id, msg).await, 2);
    // A's record of another delivery, before B's: logged, and the delivery stays B's.
    a.record_attempt(record(&claims[1], NextStep::Delivered))
        .await
        .unwrap();
    let counts = a
        .message_delivery_counts(&claims[1].message.id)
        .await
        .unwrap();
    assert_eq!((counts.success, counts.sending), (0, 1));

    // A beats again: it learns it was taken for dead, and counts as live again.
    let back = beat(a.as_ref(), true).await;
    assert!(back.rejoined, "{back:?}");
    assert_eq!(back.live, 3);
    assert!(!beat(a.as_ref(), true).await.rejoined);
}

/// A node that leaves gives back what it still holds at once and removes its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_leaves_gives_back_its_claims() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let (a, b) = (node(&database).await, node(&database).await);
    seed(a.as_ref(), 2).await;
    let t = now();
    let lease = t + TimeDelta::seconds(60);
    assert_eq!(
        a.claim_due(t, lease, &limits(10, &none()))
            .await
            .unwrap()
            .len(),
        2
    );
    beat(a.as_ref(), false).await;
    assert_eq!(beat(b.as_ref(), false).await.live, 2);
    assert_eq!(a.node_leave(now()).await.unwrap(), 2);
    assert_eq!(beat(b.as_ref(), false).await.live, 1);
    let retaken = b
        .claim_due(now(), lease, &limits(10, &none()))
        .await
        .unwrap();
    assert_eq!(retaken.len(), 2);
    assert_eq!(
        a.node_leave(now()).await.unwrap(),
        0,
        "B's claims are not A's"
    );
}

/// SQLite is one process: no node id, no table, nothing given back.
#[tokio::test]
async fn sqlite_has_no_peers() {
    let (store, _dir) = sqlite().await;
    assert_eq!(store.node_id(), None);
    let report = beat(store.as_ref(), true).await;
    assert_eq!((report.live, report.released), (1, 0));
    assert_eq!(store.node_leave(now()).await.unwrap(), 0);
}
