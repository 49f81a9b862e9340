//! What only PostgreSQL can do: several nodes on one database, and sessions that drop.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use hookd::domain::{AppId, AppKey, EventTypeName, Payload};
use hookd::store::postgres::{PgStore, PoolSettings};
use hookd::store::{
    Cursor, MessageFilter, NewApplication, NewMessage, Order, PageQuery, Store, StoreError,
};
use reqwest::StatusCode;
use serde_json::json;

use hookd::config::Role;

use crate::delivery::app_with_endpoint;
use crate::helpers::TestApp;
use crate::pg::TestDatabase;
use crate::queue::new_endpoint;
use crate::receiver::Receiver;

async fn node(database: &TestDatabase) -> Arc<dyn Store> {
    let settings = PoolSettings {
        min_connections: 1,
        max_connections: 4,
        acquire_timeout: Duration::from_secs(5),
    };
    Arc::new(PgStore::connect(&database.url, settings).await.unwrap())
}

fn message(app: &AppId) -> NewMessage {
    let raw = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    NewMessage {
        app: AppKey::Id(app.clone()),
        create_app: None,
        event_type: EventTypeName::parse("t").unwrap(),
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

/// Two nodes write messages to one application at once; a reader polling "after the last id
/// I saw" must see every message exactly once, in increasing id order: ids are drawn in
/// commit order across nodes, not by each node's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_draw_ids_in_commit_order() {
    let database = TestDatabase::require().await;
    let (a, b) = (node(&database).await, node(&database).await);
    let app = a
        .insert_application(NewApplication {
            uid: None,
            name: "shared".into(),
            rate_limit: None,
            metadata: BTreeMap::new(),
        })
        .await
        .unwrap();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let (store, app) = (
                if i % 2 == 0 { a.clone() } else { b.clone() },
                app.id.clone(),
            );
            tokio::spawn(async move {
                for _ in 0..40 {
                    store.enqueue_message(message(&app)).await.unwrap();
                }
            })
        })
        .collect();

    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 320 && Instant::now() < deadline {
        let page = PageQuery {
            limit: 50,
            cursor: seen
                .last()
                .map_or(Cursor::Start, |l| Cursor::After(l.clone())),
            order: Order::Ascending,
        };
        let found = b
            .list_messages(&app.id, &MessageFilter::default(), &page)
            .await
            .unwrap();
        seen.extend(found.into_iter().take(50).map(|m| m.id.as_str().to_owned()));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ids out of order");
    assert_eq!(
        seen.len(),
        320,
        "the poller missed messages committed behind its cursor"
    );
}

/// An operator (or a failover) ends every session: the node reconnects by itself, and
/// requests meanwhile get 503 or succeed, never hang or fail otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_recovers_by_itself_after_its_sessions_are_ended() {
    let app = TestApp::builder().with_postgres().spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let database = app.database().expect("runs on PostgreSQL");
    assert!(database.terminate_connections().await.unwrap() > 0);

    let body = json!({"eventType": "t", "payload": {}});
    let deadline = Instant::now() + Duration::from_secs(10);
    let accepted = loop {
        let started = Instant::now();
        let (status, answer) = app.post("/api/v1/app/owner/msg", Some(body.clone())).await;
        assert!(started.elapsed() < Duration::from_secs(5), "a request hung");
        match status {
            StatusCode::ACCEPTED => break answer,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer["code"], "service_unavailable", "{answer}");
            }
            other => panic!("{other}: {answer}"),
        }
        assert!(Instant::now() < deadline, "the node did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (status, _) = app
        .get(&format!(
            "/api/v1/app/owner/msg/{}",
            accepted["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/api/v1/health").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// An api node accepts messages without delivering them; a worker node, told by NOTIFY,
/// delivers them at once (not at its 30 s idle check) and serves only the health routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_worker_nodes_split_the_work() {
    let api = TestApp::builder()
        .with_postgres()
        .delivering_to_loopback()
        .with_config(|c| c.role = Role::Api)
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&api, &receiver, "/split").await;
    let first = api
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.requests("/split").is_empty(),
        "an api node delivered"
    );

    let (url, token) = (api.config().database_url.clone(), api.token.clone());
    let worker = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| {
            c.database_url = url;
            c.admin_token = token;
            c.role = Role::Worker;
        })
        .spawn()
        .await;
    receiver.wait_for("/split", 1).await;
    assert_eq!(worker.get("/api/v1/health").await.0, StatusCode::NO_CONTENT);
    let (status, body) = worker.get("/api/v1/app").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The worker now idles with nothing due; a new message must wake it through NOTIFY.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let woken = Instant::now();
    let second = api
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let received = receiver.wait_for("/split", 2).await;
    assert!(
        woken.elapsed() < Duration::from_secs(5),
        "the worker was not woken"
    );
    let ids: Vec<&str> = received
        .iter()
        .filter_map(|r| r.headers.get("webhook-id")?.to_str().ok())
        .collect();
    assert_eq!(
        ids,
        [
            first["id"].as_str().unwrap(),
            second["id"].as_str().unwrap()
        ]
    );
}

/// A node's retention batch holds its job's lock: another node (or an operator's SQL job
/// taking the same lock) skips its turn rather than waiting or working alongside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_at_a_time_runs_a_retention_batch() {
    use sqlx::Connection;
    let database = TestDatabase::require().await;
    let node = node(&database).await;
    let now = hookd::domain::time::now();
    let mut other = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let mut held = other.begin().await.unwrap();
    for job in ["payload-expiry", "prune-messages"] {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(hookd::store::postgres::job_lock_key(job))
            .execute(&mut *held)
            .await
            .unwrap();
    }
    assert_eq!(node.expire_payloads(now, 10).await.unwrap(), None);
    assert_eq!(node.prune_messages(now, 10).await.unwrap(), None);
    held.rollback().await.unwrap();
    assert_eq!(node.expire_payloads(now, 10).await.unwrap(), Some(0));
    assert_eq!(node.prune_messages(now, 10).await.unwrap(), Some(0));
}

/// The last message id of an application whose messages are all older than another's: the
/// lookup walks that application's own index, not the whole table from the newest message.
#[tokio::test]
async fn an_applications_last_message_id_is_read_from_its_own_index() {
    let database = TestDatabase::require().await;
    let store = node(&database).await;
    let mut apps = Vec::new();
    for name in ["quiet", "busy"] {
        let app = store
            .insert_application(NewApplication {
                uid: None,
                name: name.into(),
                rate_limit: None,
                metadata: BTreeMap::new(),
            })
            .await
            .unwrap();
        apps.push(app.id);
    }
    let (quiet, busy) = (&apps[0], &apps[1]);
    let written = store.enqueue_message(message(quiet)).await.unwrap();
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    // The busy application's messages, all newer than the quiet one's.
    sqlx::query(
        "INSERT INTO message (id, app_id, event_type, created_at)
         SELECT 'msg_~' || lpad(g::text, 8, '0'), $1, 'a.b', g FROM generate_series(1, 50000) g",
    )
    .bind(busy.as_str())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE message").execute(&pool).await.unwrap();
    for mode in PLAN_MODES {
        let mut conn = planned(&pool, mode).await;
        let ids = vec![quiet.as_str().to_owned(), busy.as_str().to_owned()];
        let endpoints: Vec<String> = Vec::new();
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN {}",
            hookd::store::postgres::LOCK_AND_READ_LAST_IDS
        ))
        .bind(&ids)
        .bind(&endpoints)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        check_plan(
            mode,
            &plan,
            "using message_by_app on message",
            "message_pkey",
        );
        let last: Vec<(Option<String>, Option<String>, Option<String>)> =
            sqlx::query_as(hookd::store::postgres::LOCK_AND_READ_LAST_IDS)
                .bind(&ids)
                .bind(&endpoints)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        let last: BTreeMap<_, _> = last
            .into_iter()
            .filter_map(|(app, last, _)| Some((app?, last)))
            .collect();
        assert_eq!(
            last[quiet.as_str()].as_deref(),
            Some(written.message.id.as_str())
        );
        assert_eq!(last[busy.as_str()].as_deref(), Some("msg_~00050000"));
    }
}

/// A look past a crowded head that found nothing is not repeated for `LOOK_PAST_PAUSE`:
/// during a drain it found nothing on nearly every claim, at a millisecond of the
/// database's time each. What comes due behind the backlog meanwhile is found by the first
/// claim after the pause.
#[tokio::test]
async fn a_look_past_the_head_that_found_nothing_pauses_the_next() {
    use crate::queue::{limits, new_message, seed};
    use hookd::store::postgres::LOOK_PAST_PAUSE;

    let database = TestDatabase::require().await;
    let store = node(&database).await;
    let busy = seed(store.as_ref(), 10).await;
    let other = store
        .insert_endpoint(new_endpoint(&busy.app_id))
        .await
        .unwrap();
    // Every claim's head (4 rows) is `busy`'s, and it may take 2 of them.
    let room = HashMap::from([(busy.id.clone(), 2)]);
    let t = hookd::domain::time::now() + TimeDelta::seconds(1);
    let claim = |at| {
        let (store, room, other) = (store.clone(), room.clone(), other.id.clone());
        async move {
            let claimed = store
                .claim_due(at, at + TimeDelta::seconds(30), &limits(4, &room))
                .await
                .unwrap();
            let to_other = claimed.iter().filter(|c| c.endpoint.id == other);
            (claimed.len(), to_other.count())
        }
    };
    assert_eq!(
        claim(t).await,
        (2, 0),
        "nothing past the head: the look pauses"
    );
    store
        .enqueue_message(new_message(&busy.app_id, "{}", None))
        .await
        .unwrap();
    assert_eq!(
        claim(t + LOOK_PAST_PAUSE / 2).await,
        (2, 0),
        "within the pause, the claim does not look past the head"
    );
    assert_eq!(
        claim(t + LOOK_PAST_PAUSE).await,
        (3, 1),
        "after it, the claim finds the other endpoint's delivery"
    );
}

/// The claim's look past a crowded endpoint reads each other endpoint's due deliveries
/// through the per-endpoint index, also when one endpoint holds nearly the whole queue:
/// walking the queue in time order instead (`delivery_due`) read the whole backlog once per
/// other endpoint, a second per claim at a million (`LOOK_PAST`'s docs). Checked with the
/// plan PostgreSQL makes for one execution and the generic one it may cache.
#[tokio::test]
async fn looking_past_a_backlog_uses_the_per_endpoint_index() {
    let database = TestDatabase::require().await;
    let store = node(&database).await;
    let app = store
        .insert_application(NewApplication {
            uid: None,
            name: "backlog".into(),
            rate_limit: None,
            metadata: BTreeMap::new(),
        })
        .await
        .unwrap();
    let mut endpoints = Vec::new();
    for _ in 0..3 {
        let endpoint = store
            .insert_endpoint(crate::queue::new_endpoint(&app.id))
            .await
            .unwrap();
        endpoints.push(endpoint.id.as_str().to_owned());
    }
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    // The backlog: due deliveries of the first endpoint only (a delivery's message is not a
    // foreign key, see migration 0004).
    sqlx::query(
        "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, next_attempt_at,
            created_at, updated_at)
         SELECT 'msg_backlog_' || g, $1, $2, 1, g, g, g FROM generate_series(1, 50000) g",
    )
    .bind(&endpoints[0])
    .bind(app.id.as_str())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE delivery")
        .execute(&pool)
        .await
        .unwrap();
    for mode in PLAN_MODES {
        let mut conn = plan_mode(&pool, mode).await;
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN {}", hookd::store::postgres::LOOK_PAST))
                .bind(1_000_000_i64)
                .bind(vec![endpoints[0].clone()])
                .bind(10_i64)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        check_plan(
            mode,
            &plan,
            "using delivery_due_by_endpoint on delivery",
            "using delivery_due on",
        );
    }
}

/// The writer thread's statements are prepared once and soon run on a generic plan, made
/// once and kept. Made on an empty `delivery` table, with PostgreSQL's default planner
/// settings, the plan of the attempt records joins the batch against a sequential scan of
/// the table, which grows by a row per message. With the writer's settings
/// (`PLANNER`), it looks each delivery up by its key, whatever the table's size when the
/// plan was made.
#[tokio::test]
async fn attempt_records_find_their_deliveries_by_key_on_a_plan_made_for_an_empty_table() {
    let database = TestDatabase::require().await;
    let _store = node(&database).await;
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    // The default settings, generic plan: the table is scanned (what the test guards against).
    let mut conn = plan_mode(&pool, "force_generic_plan").await;
    let plan = explain_record(&mut conn, "record_default").await;
    check_plan(
        "default settings",
        &plan,
        "Seq Scan on delivery",
        "using delivery_pkey",
    );
    for mode in PLAN_MODES {
        let mut conn = planned(&pool, mode).await;
        let plan = explain_record(&mut conn, &format!("record_{mode}")).await;
        check_plan(
            mode,
            &plan,
            "using delivery_pkey on delivery",
            "Seq Scan on delivery",
        );
    }
}

/// The plan of `RECORD` on `conn`, prepared by name (`PREPARE`, the parameters' types taken
/// from the statement's casts), as the writer's connections do, and run with no rows.
async fn explain_record(conn: &mut sqlx::PgConnection, name: &str) -> Vec<String> {
    sqlx::raw_sql(&format!(
        "PREPARE {name} AS {}",
        hookd::store::postgres::RECORD
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    let nulls = vec!["NULL"; 21].join(", ");
    sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name} ({nulls})"))
        .fetch_all(conn)
        .await
        .unwrap()
}

/// A plan test checks both ways PostgreSQL plans a prepared statement.
const PLAN_MODES: [&str; 2] = ["force_custom_plan", "force_generic_plan"];

/// A connection that plans its statements in `mode` (one of [`PLAN_MODES`]), with the
/// planner settings of the writer thread's connections, which write the batches
/// (`PLANNER`).
async fn planned(pool: &sqlx::PgPool, mode: &str) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    let mut conn = plan_mode(pool, mode).await;
    for (name, value) in hookd::store::postgres::PLANNER {
        sqlx::query(&format!("SET {name} = {value}"))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    conn
}

/// A connection that plans its statements in `mode`, with the server's planner settings
/// (those of the connections that claim deliveries and serve requests).
async fn plan_mode(pool: &sqlx::PgPool, mode: &str) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query(&format!("SET plan_cache_mode = {mode}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    conn
}

/// The `EXPLAIN` lines `plan` mention `uses` and not `avoids`.
fn check_plan(mode: &str, plan: &[String], uses: &str, avoids: &str) {
    let plan = plan.join("\n");
    assert!(plan.contains(uses), "{mode}:\n{plan}");
    assert!(!plan.contains(avoids), "{mode}:\n{plan}");
}

async fn application(store: &Arc<dyn Store>) -> AppId {
    store
        .insert_application(NewApplication {
            uid: None,
            name: "owner".into(),
            rate_limit: None,
            metadata: BTreeMap::new(),
        })
        .await
        .unwrap()
        .id
}

/// Waits until a session of the test's database waits for a lock another holds.
async fn until_a_session_waits_for_a_lock(pool: &sqlx::PgPool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no session waited for the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes a message to `app` while the delete of row `id` of `table` is under way: the
/// delete is made, the message's batch starts and waits for its lock, and then the delete
/// commits.
async fn write_while_deleting(
    store: &Arc<dyn Store>,
    pool: &sqlx::PgPool,
    app: &AppId,
    table: &str,
    id: &str,
) -> Result<hookd::store::Enqueued, StoreError> {
    let mut deleting = pool.begin().await.unwrap();
    sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
        .bind(id)
        .execute(&mut *deleting)
        .await
        .unwrap();
    let writing = tokio::spawn({
        let (store, app) = (store.clone(), app.clone());
        async move { store.enqueue_message(message(&app)).await }
    });
    until_a_session_waits_for_a_lock(pool).await;
    deleting.commit().await.unwrap();
    writing.await.unwrap()
}

/// The delivery table holds no foreign key to the endpoint (migration 0024): a batch of
/// messages that read an endpoint before its delete committed waits for the delete before
/// it inserts, and writes no delivery for it, where the foreign key's check failed the
/// whole batch and no check would leave a delivery no endpoint will ever claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_gets_no_delivery_to_an_endpoint_deleted_while_it_is_written() {
    let database = TestDatabase::require().await;
    let store = node(&database).await;
    let app = application(&store).await;
    let kept = store.insert_endpoint(new_endpoint(&app)).await.unwrap();
    let gone = store.insert_endpoint(new_endpoint(&app)).await.unwrap();
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let written = write_while_deleting(&store, &pool, &app, "endpoint", gone.id.as_str())
        .await
        .unwrap();
    let to: Vec<String> = sqlx::query_scalar("SELECT endpoint_id FROM delivery WHERE msg_id = $1")
        .bind(written.message.id.as_str())
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(to, vec![kept.id.as_str().to_owned()]);
}

/// The message table holds no foreign key to the application either: a message whose
/// application's delete commits while it is written is answered 404, and nothing of it is
/// left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_an_application_deleted_while_it_is_written_is_not_found() {
    let database = TestDatabase::require().await;
    let store = node(&database).await;
    let app = application(&store).await;
    store.insert_endpoint(new_endpoint(&app)).await.unwrap();
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let written = write_while_deleting(&store, &pool, &app, "application", app.as_str()).await;
    assert!(
        matches!(written, Err(StoreError::NotFound)),
        "{:?}",
        written.map(|w| w.message.id)
    );
    for table in ["message", "delivery"] {
        let left: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE app_id = $1"))
                .bind(app.as_str())
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(left, 0, "{table} rows left for the deleted application");
    }
}

/// The other way round: a delete that waits for a writer's lock removes, through its
/// triggers, what the writer committed meanwhile, as the constraints' cascades did. The
/// writers here are the statements' shapes by hand: a message and a delivery written under
/// `FOR KEY SHARE` (accepting), an attempt under `FOR NO KEY UPDATE` (recording).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_waited_for_a_writer_removes_what_it_wrote() {
    let database = TestDatabase::require().await;
    let store = node(&database).await;
    let app = application(&store).await;
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    for (deleted, lock) in [
        ("endpoint", "FOR NO KEY UPDATE"),
        ("endpoint", "FOR KEY SHARE"),
        ("application", "FOR KEY SHARE"),
    ] {
        let endpoint = store.insert_endpoint(new_endpoint(&app)).await.unwrap();
        let mut writing = pool.begin().await.unwrap();
        let locked = format!("SELECT 1 FROM {deleted} WHERE id = $1 {lock}");
        let id = match deleted {
            "endpoint" => endpoint.id.as_str(),
            _ => app.as_str(),
        };
        sqlx::query(&locked)
            .bind(id)
            .execute(&mut *writing)
            .await
            .unwrap();
        let msg_id = format!("msg_{deleted}_{lock}").replace(' ', "_");
        for insert in [
            "INSERT INTO message (id, app_id, event_type, created_at) VALUES ($1, $2, 't', 0)",
            "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, created_at, updated_at)
             VALUES ($1, $3, $2, 1, 0, 0)",
            "INSERT INTO attempt (id, msg_id, endpoint_id, app_id, url, status,
               response_status_code, response, response_headers, duration_ms, trigger_type,
               created_at)
             VALUES ('atmpt_' || $1, $1, $3, $2, 'https://example.com/q', 2, 0, '', '{}', 0, 0, 0)",
        ] {
            sqlx::query(insert)
                .bind(&msg_id)
                .bind(app.as_str())
                .bind(endpoint.id.as_str())
                .execute(&mut *writing)
                .await
                .unwrap();
        }
        let delete = tokio::spawn({
            let (pool, deleted, id) = (pool.clone(), deleted, id.to_owned());
            async move {
                sqlx::query(&format!("DELETE FROM {deleted} WHERE id = $1"))
                    .bind(id)
                    .execute(&pool)
                    .await
            }
        });
        until_a_session_waits_for_a_lock(&pool).await;
        writing.commit().await.unwrap();
        assert_eq!(delete.await.unwrap().unwrap().rows_affected(), 1);
        let left: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM delivery WHERE endpoint_id = $1),
                    (SELECT count(*) FROM attempt WHERE endpoint_id = $1)",
        )
        .bind(endpoint.id.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            left,
            (0, 0),
            "deliveries and attempts left after deleting the {deleted}"
        );
        // The application's messages go with it, and only with it.
        let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM message WHERE id = $1")
            .bind(&msg_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            messages,
            i64::from(deleted == "endpoint"),
            "{deleted} deleted"
        );
    }
}
