//! The store conformance suite for the delivery queue: leases, reclaiming, fencing, parking,
//! concurrent claimers.
//!
//! Each check is written once against the store interface (`Arc<dyn Store>`) and run on
//! both backends by [`conformance!`]: on SQLite in a temporary directory, and on PostgreSQL
//! in a fresh database (skipped, saying so, when PostgreSQL is unreachable outside CI).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::TimeDelta;
use hookd::domain::health::HealthSettings;
use hookd::domain::time::now;
use hookd::domain::{
    AppKey, Attempt, AttemptId, DeliveryStatus, EndpointHeaders, EndpointId, EndpointUrl,
    EventTypeName, MessageKey, Payload, ResourceKey, SigningSecret, Subscription, Trigger,
};
use hookd::store::postgres::{PgStore, PoolSettings};
use hookd::store::sqlite::SqliteStore;
use hookd::store::{
    AttemptFilter, AttemptRecord, ClaimLimits, ClaimedDelivery, Cursor, Direct, DirectClaims,
    NewApplication, NewEndpoint, NewMessage, NextStep, Order, PageQuery, Store,
};
use tempfile::TempDir;

use crate::pg::TestDatabase;

pub(crate) async fn sqlite() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_path(&dir.path().join("q.db"), 2)
        .await
        .unwrap();
    (Arc::new(store), dir)
}

pub(crate) async fn postgres() -> Option<(Arc<dyn Store>, TestDatabase)> {
    let database = TestDatabase::create().await?;
    let store = PgStore::connect(
        &database.url,
        PoolSettings {
            min_connections: 1,
            max_connections: 8,
            acquire_timeout: std::time::Duration::from_secs(5),
        },
    )
    .await
    .unwrap();
    Some((Arc::new(store), database))
}

/// Runs each named check (an `async fn(Arc<dyn Store>)`) on every backend.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (store, _dir) = super::sqlite().await;
                    super::$check(store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some((store, _database)) = super::postgres().await else {
                        return;
                    };
                    super::$check(store).await;
                }
            )*
        }
    };
}

conformance!(
    a_claim_hides_deliveries_until_its_lease_expires,
    retries_come_due_at_their_time_and_releases_at_once,
    a_release_gives_back_only_the_claims_still_held,
    skipped_and_disabled_endpoints_are_not_claimed,
    gone_fails_the_delivery_and_parks_the_rest,
    concurrent_claimers_never_share_a_delivery,
    old_finished_messages_are_pruned_in_batches,
    a_record_for_a_deleted_delivery_is_dropped_quietly,
    deliveries_reserved_for_direct_claims_are_written_claimed,
    a_claim_looks_past_a_head_that_one_endpoint_fills,
);

pub(crate) fn none() -> HashMap<EndpointId, usize> {
    HashMap::new()
}

pub(crate) fn limits(total: usize, room: &HashMap<EndpointId, usize>) -> ClaimLimits {
    ClaimLimits {
        total,
        per_endpoint: 1000,
        room: room.clone(),
    }
}

/// One app with one endpoint and `n` messages; returns the endpoint.
pub(crate) async fn seed(store: &dyn Store, n: usize) -> hookd::domain::Endpoint {
    let app = store
        .insert_application(NewApplication {
            uid: None,
            name: "q".into(),
            rate_limit: None,
            metadata: BTreeMap::new(),
        })
        .await
        .unwrap();
    let endpoint = store.insert_endpoint(new_endpoint(&app.id)).await.unwrap();
    for _ in 0..n {
        store
            .enqueue_message(new_message(&app.id, "{}", None))
            .await
            .unwrap();
    }
    endpoint
}

/// A message of event type `a` with `payload` to every endpoint of the application.
pub(crate) fn new_message(
    app_id: &hookd::domain::AppId,
    payload: &str,
    direct: Option<Direct>,
) -> NewMessage {
    let raw = serde_json::value::RawValue::from_string(payload.into()).unwrap();
    NewMessage {
        app: AppKey::Id(app_id.clone()),
        create_app: None,
        event_type: EventTypeName::parse("a").unwrap(),
        event_id: None,
        channels: None,
        payload: Payload::parse(&raw, 64).unwrap(),
        payload_retention: None,
        deliver_at: None,
        priority: None,
        only_endpoint: None,
        direct,
        key: None,
    }
}

pub(crate) fn new_endpoint(app_id: &hookd::domain::AppId) -> NewEndpoint {
    NewEndpoint {
        app_id: app_id.clone(),
        uid: None,
        url: EndpointUrl::parse("https://example.com/q").unwrap(),
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
    }
}

pub(crate) fn record(claim: &ClaimedDelivery, next: NextStep) -> AttemptRecord {
    AttemptRecord {
        delivery_id: claim.id,
        lease: claim.lease,
        attempt: Attempt {
            id: AttemptId::generate(),
            msg_id: claim.message.id.clone(),
            endpoint_id: claim.endpoint.id.clone(),
            app_id: claim.endpoint.app_id.clone(),
            url: claim.endpoint.url.as_str().into(),
            status: DeliveryStatus::Fail,
            response_status_code: 500,
            response_body: String::new(),
            response_headers: BTreeMap::new(),
            request_headers: BTreeMap::new(),
            duration_ms: 1,
            trigger: Trigger::Scheduled,
            error: None,
            created_at: now(),
            policy: None,
            timeout_ms: None,
        },
        next,
        msg_event_id: None,
        health: Arc::new(HealthSettings::default()),
        fifo: claim.endpoint.ordering.is_fifo(),
    }
}

async fn a_claim_hides_deliveries_until_its_lease_expires(store: Arc<dyn Store>) {
    seed(store.as_ref(), 3).await;
    let t = now();
    let lease = t + TimeDelta::seconds(30);
    let first = store
        .claim_due(t, lease, &limits(10, &none()))
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    assert!(
        store
            .claim_due(t, lease, &limits(10, &none()))
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert_eq!(store.next_due(t).await.unwrap(), Some(lease));

    // A dispatcher that died holds its claims only until the lease runs out.
    let later = lease + TimeDelta::seconds(1);
    let retaken = store
        .claim_due(later, later + TimeDelta::seconds(30), &limits(10, &none()))
        .await
        .unwrap();
    assert_eq!(retaken.len(), 3);
    assert_eq!(
        retaken[0].attempts, 0,
        "an unrecorded attempt does not count"
    );

    // The old claim's late record is kept in the log but cannot move the delivery.
    store
        .record_attempt(record(&first[0], NextStep::Delivered))
        .await
        .unwrap();
    let counts = store
        .message_delivery_counts(&first[0].message.id)
        .await
        .unwrap();
    assert_eq!((counts.sending, counts.success), (1, 0));
    store
        .record_attempt(record(&retaken[0], NextStep::Delivered))
        .await
        .unwrap();
    let counts = store
        .message_delivery_counts(&retaken[0].message.id)
        .await
        .unwrap();
    assert_eq!((counts.sending, counts.success), (0, 1));
}

async fn retries_come_due_at_their_time_and_releases_at_once(store: Arc<dyn Store>) {
    seed(store.as_ref(), 2).await;
    let t = now();
    let claims = store
        .claim_due(t, t + TimeDelta::seconds(30), &limits(10, &none()))
        .await
        .unwrap();
    let retry_at = t + TimeDelta::seconds(300);
    store
        .record_attempt(record(&claims[0], NextStep::RetryAt(retry_at)))
        .await
        .unwrap();
    store
        .release_claims(&[(claims[1].id, claims[1].lease)], t)
        .await
        .unwrap();

    let again = store
        .claim_due(t, t + TimeDelta::seconds(30), &limits(10, &none()))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "only the released one is due");
    assert_eq!(again[0].id, claims[1].id);
    assert_eq!(
        store.next_due(t).await.unwrap(),
        Some(t + TimeDelta::seconds(30))
    );
    store
        .record_attempt(record(&again[0], NextStep::Delivered))
        .await
        .unwrap();
    assert_eq!(store.next_due(t).await.unwrap(), Some(retry_at));
    let due = store
        .claim_due(
            retry_at,
            retry_at + TimeDelta::seconds(30),
            &limits(10, &none()),
        )
        .await
        .unwrap();
    assert_eq!(due.iter().map(|c| c.id).collect::<Vec<_>>(), [claims[0].id]);
    assert_eq!(due[0].attempts, 1);
}

/// Claims given back at shutdown are due at once, but only those whose lease the caller still
/// holds: one taken over by another claim stays with it.
async fn a_release_gives_back_only_the_claims_still_held(store: Arc<dyn Store>) {
    seed(store.as_ref(), 3).await;
    let t = now();
    let claims = store
        .claim_due(t, t + TimeDelta::seconds(30), &limits(10, &none()))
        .await
        .unwrap();
    assert_eq!(claims.len(), 3);
    let stale = claims[2].lease - TimeDelta::seconds(1);
    let held: Vec<(i64, _)> = vec![
        (claims[0].id, claims[0].lease),
        (claims[1].id, claims[1].lease),
        (claims[2].id, stale),
    ];
    store.release_claims(&held, t).await.unwrap();
    let again = store
        .claim_due(t, t + TimeDelta::seconds(60), &limits(10, &none()))
        .await
        .unwrap();
    let mut ids: Vec<i64> = again.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [claims[0].id, claims[1].id]);
}

/// A claim reads as many rows at the head of the queue as it may take. When one endpoint's
/// backlog fills the head and it has room for only part of it, the endpoints behind are
/// still found (through the per-endpoint due index).
async fn a_claim_looks_past_a_head_that_one_endpoint_fills(store: Arc<dyn Store>) {
    let busy = seed(store.as_ref(), 4).await;
    let other = store
        .insert_endpoint(new_endpoint(&busy.app_id))
        .await
        .unwrap();
    store
        .enqueue_message(new_message(&busy.app_id, "{}", None))
        .await
        .unwrap();

    // The head (4 rows) is all `busy`'s, and it may take only 2 of them.
    let t = now();
    let room = HashMap::from([(busy.id.clone(), 2)]);
    let claimed = store
        .claim_due(t, t + TimeDelta::seconds(30), &limits(4, &room))
        .await
        .unwrap();
    let to = |endpoint: &EndpointId| {
        claimed
            .iter()
            .filter(|c| &c.endpoint.id == endpoint)
            .count()
    };
    assert_eq!(to(&busy.id), 2);
    assert_eq!(to(&other.id), 1, "found past the head");
}

async fn skipped_and_disabled_endpoints_are_not_claimed(store: Arc<dyn Store>) {
    let endpoint = seed(store.as_ref(), 2).await;
    let t = now();
    let lease = t + TimeDelta::seconds(30);
    let full = HashMap::from([(endpoint.id.clone(), 0)]);
    let one = HashMap::from([(endpoint.id.clone(), 1)]);
    let claimed = store.claim_due(t, lease, &limits(10, &one)).await.unwrap();
    assert_eq!(claimed.len(), 1, "no more than the endpoint's room");
    store
        .release_claims(&[(claimed[0].id, claimed[0].lease)], t)
        .await
        .unwrap();
    assert!(
        store
            .claim_due(t, lease, &limits(10, &full))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.next_due(t).await.unwrap(),
        None,
        "nothing due later than now"
    );

    let mut disabled = endpoint.clone();
    disabled.disabled = true;
    store.update_endpoint(disabled).await.unwrap();
    assert!(
        store
            .claim_due(t, lease, &limits(10, &none()))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due(t).await.unwrap(), None, "parked, not polled");

    let mut enabled = endpoint;
    enabled.disabled = false;
    store.update_endpoint(enabled).await.unwrap();
    let later = now();
    assert_eq!(
        store
            .claim_due(later, later + TimeDelta::seconds(30), &limits(10, &none()))
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn gone_fails_the_delivery_and_parks_the_rest(store: Arc<dyn Store>) {
    let endpoint = seed(store.as_ref(), 3).await;
    let t = now();
    let claims = store
        .claim_due(t, t + TimeDelta::seconds(30), &limits(1, &none()))
        .await
        .unwrap();
    store
        .record_attempt(record(&claims[0], NextStep::DisableEndpoint))
        .await
        .unwrap();
    let app = ResourceKey::Id(endpoint.app_id.clone());
    let ep = store
        .get_endpoint(&endpoint.app_id, &ResourceKey::Id(endpoint.id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert!(ep.disabled);
    assert!(store.get_application(&app).await.unwrap().is_some());
    let stats = store
        .endpoint_stats(&endpoint.id, None, None)
        .await
        .unwrap();
    assert_eq!((stats.fail, stats.pending), (1, 2));
    let later = t + TimeDelta::days(1);
    assert!(
        store
            .claim_due(later, later, &limits(10, &none()))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_claimers_never_share_a_delivery(store: Arc<dyn Store>) {
    seed(store.as_ref(), 120).await;
    let t = now();
    let claimers = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_due(t, t + TimeDelta::seconds(30), &limits(7, &none()))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|c| c.id));
            }
        })
    });
    let mut claimed: Vec<i64> = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    let total = claimed.len();
    claimed.sort_unstable();
    claimed.dedup();
    assert_eq!(claimed.len(), total, "a delivery was claimed twice");
    assert_eq!(total, 120, "every delivery was claimed once");
}

async fn old_finished_messages_are_pruned_in_batches(store: Arc<dyn Store>) {
    let endpoint = seed(store.as_ref(), 5).await;
    let t = now();
    let claims = store
        .claim_due(t, t + TimeDelta::seconds(30), &limits(10, &none()))
        .await
        .unwrap();
    for claim in &claims[..4] {
        store
            .record_attempt(record(claim, NextStep::Delivered))
            .await
            .unwrap();
    }
    let later = now() + TimeDelta::seconds(1);
    assert_eq!(
        store
            .prune_messages(t - TimeDelta::days(1), 10)
            .await
            .unwrap(),
        Some(0),
        "nothing is that old"
    );
    assert_eq!(store.prune_messages(later, 3).await.unwrap(), Some(3));
    assert_eq!(store.prune_messages(later, 3).await.unwrap(), Some(1));
    assert_eq!(
        store.prune_messages(later, 3).await.unwrap(),
        Some(0),
        "a message still being delivered is kept"
    );
    let kept = &claims[4].message.id;
    let message = store
        .get_message(&endpoint.app_id, &MessageKey::Id(kept.clone()))
        .await
        .unwrap();
    assert!(message.is_some());
    let attempts = store
        .list_attempts(
            &endpoint.app_id,
            &AttemptFilter {
                endpoint_id: Some(endpoint.id.clone()),
                ..AttemptFilter::default()
            },
            &PageQuery {
                limit: 50,
                cursor: Cursor::Start,
                order: Order::Descending,
            },
        )
        .await
        .unwrap();
    assert!(attempts.is_empty(), "attempts go with their messages");
    let counts = store
        .endpoint_stats(&endpoint.id, None, None)
        .await
        .unwrap();
    assert_eq!((counts.success, counts.sending), (0, 1));
}

async fn a_record_for_a_deleted_delivery_is_dropped_quietly(store: Arc<dyn Store>) {
    let endpoint = seed(store.as_ref(), 1).await;
    let t = now();
    let claims = store
        .claim_due(t, t + TimeDelta::seconds(30), &limits(10, &none()))
        .await
        .unwrap();
    store
        .delete_endpoint(&endpoint.app_id, &endpoint.id)
        .await
        .unwrap();
    store
        .record_attempt(record(&claims[0], NextStep::Delivered))
        .await
        .expect("nothing to record against is not an error");
}

/// Direct claims that take the deliveries to one endpoint and note every endpoint asked for.
struct TakeOne {
    lease: hookd::domain::Timestamp,
    take: EndpointId,
    asked: std::sync::Mutex<Vec<EndpointId>>,
}

impl DirectClaims for TakeOne {
    fn lease(&self) -> hookd::domain::Timestamp {
        self.lease
    }

    fn reserve(&self, endpoint: &EndpointId) -> bool {
        self.asked.lock().unwrap().push(endpoint.clone());
        *endpoint == self.take
    }
}

async fn deliveries_reserved_for_direct_claims_are_written_claimed(store: Arc<dyn Store>) {
    let taken = seed(store.as_ref(), 0).await;
    let other = store
        .insert_endpoint(NewEndpoint {
            url: EndpointUrl::parse("https://example.com/other").unwrap(),
            ..new_endpoint(&taken.app_id)
        })
        .await
        .unwrap();
    let t = now();
    let lease = t + TimeDelta::seconds(30);
    let direct = Arc::new(TakeOne {
        lease,
        take: taken.id.clone(),
        asked: Default::default(),
    });
    let enqueued = store
        .enqueue_message(new_message(
            &taken.app_id,
            r#"{"n":1}"#,
            Some(Direct(direct.clone())),
        ))
        .await
        .unwrap();
    let mut asked = direct.asked.lock().unwrap().clone();
    asked.sort();
    let mut both = vec![taken.id.clone(), other.id.clone()];
    both.sort();
    assert_eq!(asked, both, "asked once per delivery");
    assert_eq!(enqueued.pending, 1);
    let [claimed] = enqueued.claimed.as_slice() else {
        panic!("one delivery claimed: {:?}", enqueued.claimed);
    };
    assert_eq!(claimed.endpoint, taken);
    assert_eq!(claimed.lease, lease);
    assert_eq!(claimed.attempts, 0);
    assert_eq!(claimed.message.id, enqueued.message.id);
    assert_eq!(
        claimed.message.payload.as_ref().map(|p| p.as_str()),
        Some(r#"{"n":1}"#)
    );

    // Only the pending one is claimed; the direct one is leased like any claim.
    let t = now();
    let found = store
        .claim_due(t, lease, &limits(10, &none()))
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|c| &c.endpoint.id).collect::<Vec<_>>(),
        [&other.id]
    );
    assert_eq!(store.next_due(t).await.unwrap(), Some(lease));
    let counts = store
        .message_delivery_counts(&enqueued.message.id)
        .await
        .unwrap();
    assert_eq!(counts.sending, 2);

    // Unrecorded (its node died), it is claimed again once its lease runs out...
    let later = lease + TimeDelta::seconds(1);
    let retaken = store
        .claim_due(later, later + TimeDelta::seconds(30), &limits(10, &none()))
        .await
        .unwrap();
    assert_eq!(
        retaken.iter().map(|c| c.id).collect::<Vec<_>>(),
        [claimed.id, found[0].id]
    );
    // ... and the direct claim's record, fenced by its lease, no longer moves it.
    store
        .record_attempt(record(claimed, NextStep::Delivered))
        .await
        .unwrap();
    store
        .record_attempt(record(&retaken[0], NextStep::Delivered))
        .await
        .unwrap();
    let counts = store
        .message_delivery_counts(&enqueued.message.id)
        .await
        .unwrap();
    assert_eq!((counts.success, counts.sending), (1, 1));
}
