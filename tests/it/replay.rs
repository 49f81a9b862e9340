//! Replays, recovery and dead letters: `bulk-replay`, `replay-missing` and `recover` as
//! background tasks, a task resumed after its node died, and the dead-letter list and
//! requeue. Every test runs on SQLite and on PostgreSQL.

use std::time::Duration;

use chrono::{SecondsFormat, TimeDelta, Utc};
use hookd::delivery::clock::ManualClock;
use hookd::domain::time::now;
use hookd::domain::{AppId, EndpointId, TaskKind};
use hookd::replay::ReplayCursor;
use hookd::store::FailedFilter;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::{SECRET, attempts, delivery_state};
use crate::helpers::{Backend, TestApp, TestAppBuilder, assert_validation_error, eventually};
use crate::receiver::{Receiver, Reply};

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Backend::Sqlite).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    bulk_replay_sends_again_only_the_filtered_range,
    replay_missing_sends_only_what_the_endpoint_never_had,
    recover_runs_as_a_task_its_id_resolves,
    a_recovery_whose_runner_died_resumes_once_its_lease_runs_out,
    dead_letters_list_with_filters_and_pages_and_requeue,
);

fn builder(backend: Backend) -> TestAppBuilder {
    let builder = TestApp::builder()
        .delivering_to_loopback()
        // No retries: a failed attempt fails its delivery for good.
        .with_config(|c| c.retry_schedule = vec![]);
    match backend {
        Backend::Sqlite => builder,
        Backend::Postgres => builder.with_postgres(),
    }
}

async fn endpoint(
    app: &TestApp,
    app_id: &str,
    receiver: &Receiver,
    path: &str,
    extra: Value,
) -> String {
    let mut body = json!({"url": receiver.url(path), "secret": SECRET});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let created = app.create_endpoint(app_id, body).await;
    created["id"].as_str().unwrap().to_owned()
}

async fn message(app: &TestApp, app_id: &str, event_type: &str, n: u32) -> String {
    let msg = app
        .create_message(
            app_id,
            json!({"eventType": event_type, "payload": {"n": n}}),
        )
        .await;
    msg["id"].as_str().unwrap().to_owned()
}

/// The task once it has finished.
async fn finished(app: &TestApp, task_id: &str) -> Value {
    let path = format!("/api/v1/background-task/{task_id}");
    eventually("the task to finish", || async {
        let (status, task) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{task}");
        (task["status"] == "finished").then_some(task)
    })
    .await
}

/// The `n` of each payload the receiver got at `path`, in arrival order.
fn payload_ns(receiver: &Receiver, path: &str) -> Vec<u64> {
    receiver
        .requests(path)
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["n"].as_u64().unwrap()
        })
        .collect()
}

async fn bulk_replay_sends_again_only_the_filtered_range(backend: Backend) {
    let app = builder(backend).spawn().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/r", Reply::status(200));
    let app_id = app.create_app(json!({"name": "replays"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ep = endpoint(&app, &app_id, &receiver, "/r", json!({})).await;
    let since = Utc::now() - TimeDelta::seconds(1);
    let ids = [
        message(&app, &app_id, "a", 0).await,
        message(&app, &app_id, "b", 1).await,
        message(&app, &app_id, "a", 2).await,
    ];
    let until = Utc::now();
    let late = message(&app, &app_id, "a", 3).await;
    receiver.wait_for("/r", 4).await;
    for id in ids.iter().chain([&late]) {
        delivery_state(&app, &app_id, id, "success").await;
    }
    let path = format!("/api/v1/app/{app_id}/endpoint/{ep}/bulk-replay");

    let (status, body) = app
        .post(&path, Some(json!({"since": since, "tag": "x"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "tag"]);
    let (status, body) = app
        .post(&path, Some(json!({"since": since, "status": 3})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "status"]);

    // Only failed deliveries: there are none.
    let (status, out) = app
        .post(&path, Some(json!({"since": since, "status": 2})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    let done = finished(&app, out["id"].as_str().unwrap()).await;
    assert_eq!(done["data"], json!({"messagesSent": 0}));

    let (status, out) = app
        .post(
            &path,
            Some(json!({
                "since": since, "until": until, "eventTypes": ["a"], "tag": null,
                "statusCodeClass": 200, "channel": null,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["task"], "endpoint.bulk-replay");
    assert!(out["id"].as_str().unwrap().starts_with("qtask_"), "{out}");
    let done = finished(&app, out["id"].as_str().unwrap()).await;
    assert_eq!(done["data"], json!({"messagesSent": 2}), "{done}");
    receiver.wait_for("/r", 6).await;
    let mut again = payload_ns(&receiver, "/r")[4..].to_vec();
    again.sort_unstable();
    assert_eq!(
        again,
        [0, 2],
        "the type-a messages before `until`, once each"
    );
    // Sent as manual attempts.
    let attempts = attempts(&app, &app_id, &ids[0], 2).await;
    assert_eq!(attempts[0]["triggerType"], 1, "{attempts:?}");
    assert_eq!(attempts[1]["triggerType"], 0, "{attempts:?}");
    app.stop().await;
}

async fn replay_missing_sends_only_what_the_endpoint_never_had(backend: Backend) {
    let app = builder(backend).spawn().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/first", Reply::status(200));
    receiver.default_reply("/late", Reply::status(200));
    let app_id = app.create_app(json!({"name": "missing"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    endpoint(&app, &app_id, &receiver, "/first", json!({})).await;
    let since = Utc::now() - TimeDelta::seconds(1);
    let resent = message(&app, &app_id, "a", 0).await;
    message(&app, &app_id, "b", 1).await;
    message(&app, &app_id, "a", 2).await;
    receiver.wait_for("/first", 3).await;

    // Created after the messages; it takes only type a.
    let late = endpoint(
        &app,
        &app_id,
        &receiver,
        "/late",
        json!({"eventTypes": ["a"]}),
    )
    .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/app/{app_id}/msg/{resent}/endpoint/{late}/resend"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    receiver.wait_for("/late", 1).await;

    let (status, out) = app
        .post(
            &format!("/api/v1/app/{app_id}/endpoint/{late}/replay-missing"),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["task"], "endpoint.replay");
    let done = finished(&app, out["id"].as_str().unwrap()).await;
    assert_eq!(
        done["data"],
        json!({"messagesSent": 1}),
        "{done} {:?}",
        payload_ns(&receiver, "/late")
    );
    receiver.wait_for("/late", 2).await;
    assert_eq!(payload_ns(&receiver, "/late"), [0, 2]);

    // Run again: nothing is missing any more.
    let (_, out) = app
        .post(
            &format!("/api/v1/app/{app_id}/endpoint/{late}/replay-missing"),
            Some(json!({"since": since})),
        )
        .await;
    let done = finished(&app, out["id"].as_str().unwrap()).await;
    assert_eq!(done["data"], json!({"messagesSent": 0}));
    assert_eq!(
        payload_ns(&receiver, "/first"),
        [0, 1, 2],
        "the first endpoint had them all"
    );
    app.stop().await;
}

async fn recover_runs_as_a_task_its_id_resolves(backend: Backend) {
    let app = builder(backend).spawn().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/flaky", Reply::status(500));
    let app_id = app.create_app(json!({"name": "recover"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ep = endpoint(&app, &app_id, &receiver, "/flaky", json!({})).await;
    let ids = [
        message(&app, &app_id, "a", 0).await,
        message(&app, &app_id, "a", 1).await,
    ];
    for id in &ids {
        delivery_state(&app, &app_id, id, "fail").await;
    }
    receiver.default_reply("/flaky", Reply::status(200));
    let since = (Utc::now() - TimeDelta::hours(1)).to_rfc3339();
    let (status, out) = app
        .post(
            &format!("/api/v1/app/{app_id}/endpoint/{ep}/recover"),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["task"], "endpoint.recover");
    assert_eq!(
        out.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "status", "task", "updatedAt"]
    );
    let done = finished(&app, out["id"].as_str().unwrap()).await;
    assert_eq!(done["data"], json!({"messagesSent": 2}), "{done}");
    for id in &ids {
        delivery_state(&app, &app_id, id, "success").await;
    }
    let (_, list) = app
        .get("/api/v1/background-task?task=endpoint.recover")
        .await;
    assert_eq!(list["data"][0]["id"], out["id"], "{list}");
    app.stop().await;
}

async fn a_recovery_whose_runner_died_resumes_once_its_lease_runs_out(backend: Backend) {
    // The clock runs a minute ahead (so deliveries are due at once) and then stands still.
    let clock = ManualClock::new(now() + TimeDelta::minutes(1));
    let mut app = builder(backend).with_clock(clock.clone()).spawn().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/down", Reply::status(500));
    let app_id = app.create_app(json!({"name": "resume"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ep = endpoint(&app, &app_id, &receiver, "/down", json!({})).await;
    let msg = message(&app, &app_id, "a", 0).await;
    delivery_state(&app, &app_id, &msg, "fail").await;
    receiver.default_reply("/down", Reply::status(200));

    // Another node started a recovery, claimed it and died before its first step.
    let other_node = hookd::app::open_store(app.config()).await.unwrap();
    let filter = FailedFilter {
        endpoint: Some(EndpointId::parse(&ep).unwrap()),
        ..FailedFilter::default()
    };
    let task = hookd::replay::start(
        other_node.as_ref(),
        TaskKind::Recover,
        &AppId::parse(&app_id).unwrap(),
        &ReplayCursor::requeue(&filter),
    )
    .await
    .unwrap();
    let at = hookd::delivery::clock::Clock::now(&clock);
    let claimed = other_node
        .claim_task(at, at + TimeDelta::seconds(60))
        .await
        .unwrap();
    assert_eq!(claimed.map(|t| t.id), Some(task.id.clone()));
    drop(other_node);

    app.restart().await;
    let path = format!("/api/v1/background-task/{}", task.id);
    let (_, still) = app.get(&path).await;
    assert_eq!(still["status"], "running", "the lease still holds: {still}");
    assert_eq!(still["data"], json!({"messagesSent": 0}));

    clock.advance(Duration::from_secs(120));
    let done = finished(&app, task.id.as_str()).await;
    assert_eq!(done["data"], json!({"messagesSent": 1}));
    delivery_state(&app, &app_id, &msg, "success").await;
    app.stop().await;
}

async fn dead_letters_list_with_filters_and_pages_and_requeue(backend: Backend) {
    let app = builder(backend).spawn().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/x", Reply::status(500));
    receiver.default_reply("/y", Reply::status(500));
    let app_id = app.create_app(json!({"name": "dead", "uid": "dead"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let x = endpoint(&app, &app_id, &receiver, "/x", json!({"uid": "x"})).await;
    let y = endpoint(&app, &app_id, &receiver, "/y", json!({})).await;
    let msgs = [
        message(&app, &app_id, "a", 0).await,
        message(&app, &app_id, "b", 1).await,
        message(&app, &app_id, "a", 2).await,
    ];
    // An application's dead letters are its own.
    let other = app.create_app(json!({"name": "other"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.default_reply("/z", Reply::status(500));
    endpoint(&app, &other, &receiver, "/z", json!({})).await;
    message(&app, &other, "a", 9).await;

    let base = "/api/v1/app/dead/dead-letter";
    let all = eventually("six dead letters", || async {
        let all = app.list_all(&format!("{base}?limit=2")).await;
        (all.len() == 6).then_some(all)
    })
    .await;
    let ids: Vec<&str> = all.iter().map(|d| d["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| std::cmp::Reverse(id[4..].parse::<i64>().unwrap()));
    assert_eq!(ids, sorted, "newest first, each once");
    assert!(all.iter().all(|d| d["attempts"] == 1), "{all:?}");

    let by_endpoint = app.list_all(&format!("{base}?endpointId=x&limit=1")).await;
    assert_eq!(by_endpoint.len(), 3);
    assert!(by_endpoint.iter().all(|d| d["endpointId"] == x.as_str()));
    let by_type = app.list_all(&format!("{base}?eventType=b")).await;
    assert_eq!(by_type.len(), 2);
    assert!(by_type.iter().all(|d| d["msgId"] == msgs[1].as_str()));
    let (_, none) = app
        .get(&format!(
            "{base}?until={}",
            (Utc::now() - TimeDelta::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true)
        ))
        .await;
    assert_eq!(none["data"], json!([]), "{none}");
    let ascending = app
        .list_all(&format!("{base}?order=ascending&limit=4"))
        .await;
    assert_eq!(ascending.len(), 6);
    assert_eq!(ascending[0]["id"], all[5]["id"]);
    let (status, body) = app.get(&format!("{base}?iterator=msg_1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    receiver.default_reply("/x", Reply::status(200));
    receiver.default_reply("/y", Reply::status(200));
    let requeue = format!("{base}/requeue");
    let (status, body) = app
        .post(
            &requeue,
            Some(json!({"ids": [by_type[0]["id"]], "endpointId": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "endpointId"]);

    // By id: the two deliveries of message b, in the request.
    let (status, out) = app
        .post(
            &requeue,
            Some(json!({"ids": [by_type[0]["id"], by_type[1]["id"], "dlv_999999"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out, json!({"requeued": 2, "task": null}));
    let left = eventually("b's deliveries to succeed", || async {
        let left = app.list_all(base).await;
        (left.len() == 4 && receiver.requests("/x").len() >= 4).then_some(left)
    })
    .await;
    assert!(left.iter().all(|d| d["eventType"] == "a"));

    // By filter: y's, as a background task.
    let (status, out) = app
        .post(
            &requeue,
            Some(json!({"endpointId": y, "eventTypes": ["a"]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["requeued"], Value::Null);
    assert_eq!(out["task"]["task"], "endpoint.recover");
    let done = finished(&app, out["task"]["id"].as_str().unwrap()).await;
    assert_eq!(done["data"], json!({"messagesSent": 2}));
    let left = eventually("y's dead letters to be delivered", || async {
        let left = app.list_all(base).await;
        (left.len() == 2).then_some(left)
    })
    .await;
    assert!(
        left.iter().all(|d| d["endpointId"] == x.as_str()),
        "{left:?}"
    );
    let others = eventually("the other application's dead letter", || async {
        let (_, others) = app.get(&format!("/api/v1/app/{other}/dead-letter")).await;
        (others["data"].as_array().unwrap().len() == 1).then_some(others)
    })
    .await;
    assert_eq!(others["data"][0]["eventType"], "a");
    app.stop().await;
}

// ---- The store's steps, with a small batch, on both backends -------------------------

mod steps {
    use std::sync::Arc;

    use chrono::TimeDelta;
    use hookd::domain::time::now;
    use hookd::domain::{DeliveryStatus, EndpointId, MessageId};
    use hookd::store::{ReplayFilter, ReplayStep, Store};

    use crate::queue::{new_endpoint, postgres, seed, sqlite};

    conformance!(replays_go_on_from_their_cursor_in_steps);

    /// Runs steps of at most 2 until one says it is the last; the count of each.
    async fn steps<F, Fut>(mut step: F) -> Vec<u64>
    where
        F: FnMut(Option<MessageId>) -> Fut,
        Fut: std::future::Future<Output = ReplayStep>,
    {
        let (mut sent, mut after) = (Vec::new(), None);
        loop {
            let step = step(after.take()).await;
            sent.push(step.sent);
            match step.last {
                Some(last) => after = Some(MessageId::from_stored(last)),
                None => return sent,
            }
        }
    }

    async fn replays_go_on_from_their_cursor_in_steps(store: Arc<dyn Store>) {
        let since = now() - TimeDelta::minutes(1);
        let first = seed(store.as_ref(), 5).await;
        let late = store
            .insert_endpoint(new_endpoint(&first.app_id))
            .await
            .unwrap();
        let missing = |store: Arc<dyn Store>, late: EndpointId| {
            move |after: Option<MessageId>| {
                let (store, late) = (store.clone(), late.clone());
                async move {
                    store
                        .replay_missing_step(&late, since, None, after.as_ref(), 2, now())
                        .await
                        .unwrap()
                }
            }
        };
        assert_eq!(
            steps(missing(store.clone(), late.id.clone())).await,
            [2, 2, 1]
        );
        assert_eq!(
            steps(missing(store.clone(), late.id.clone())).await,
            [0],
            "nothing is missing any more: one step finds nothing"
        );
        let pending = ReplayFilter {
            since,
            until: None,
            statuses: vec![DeliveryStatus::Pending],
            status_code_class: None,
            messages: Default::default(),
        };
        let replayed = steps(|after| {
            let (store, pending, id) = (store.clone(), pending.clone(), first.id.clone());
            async move {
                store
                    .replay_step(&id, &pending, after.as_ref(), 2, now())
                    .await
                    .unwrap()
            }
        })
        .await;
        assert_eq!(replayed, [2, 2, 1]);
        let before = ReplayFilter {
            until: Some(since),
            ..pending
        };
        let none = store
            .replay_step(&first.id, &before, None, 2, now())
            .await
            .unwrap();
        assert_eq!(
            none,
            ReplayStep {
                sent: 0,
                last: None
            },
            "all created after `until`"
        );
    }
}
