//! A node that dies, pauses or stops while it holds a claim (issue 18): the receiver holds
//! the first attempt open, the node holding the claim is SIGKILLed, SIGSTOPped or SIGTERMed,
//! and the other node attempts the delivery again, within seconds rather than when the
//! claim's lease (the request timeout, 30 s here, plus 30 s) runs out. Each test prints the
//! time from the signal to the second attempt's arrival.
//!
//! The nodes run with the default heartbeat (every 2 s, dead after 10 s).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::SERIAL;
use crate::nodes::Cluster;
use crate::receiver::Receiver;

/// The bound: from a node's death to the other node's attempt.
const TAKEOVER_BOUND: Duration = Duration::from_secs(15);
/// A claim's lease here: `max_request_timeout_secs` (30 s) plus 30 s.
const LEASE: Duration = Duration::from_secs(60);

/// Two nodes whose attempts may last 30 s, delivering to the receiver's `/hold`, up for long
/// enough (`node_dead_after_secs`, 10 s) that each may judge the other; returns the
/// cluster and the application id.
async fn two_nodes(receiver: &Receiver) -> (Cluster, String) {
    let started = Instant::now();
    let cluster = Cluster::start_with(
        2,
        &[
            ("HOOKD_REQUEST_TIMEOUT_SECS", "30"),
            ("HOOKD_MAX_REQUEST_TIMEOUT_SECS", "30"),
        ],
    )
    .await;
    let apps = cluster.create_apps(1, &receiver.hold_url()).await;
    let steady = Duration::from_secs(11);
    tokio::time::sleep(steady.saturating_sub(started.elapsed())).await;
    let nodes: Vec<(String,)> = cluster.query("SELECT id FROM node").await;
    assert_eq!(nodes.len(), 2, "{nodes:?}\n{}", cluster.logs());
    (cluster, apps[0].clone())
}

/// Sends a message through node 0, waits for its first attempt (held open by the receiver)
/// and returns the message id and the index of the node holding its claim.
async fn send_and_find_holder(
    cluster: &Cluster,
    receiver: &Receiver,
    app: &str,
) -> (String, usize) {
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "held", "payload": {"hold": true}});
    let (status, message) = cluster.post(0, &path, &body).await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{message}");
    let id = message["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.timeline(&id).is_empty() {
        assert!(Instant::now() < deadline, "no attempt\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let holders: Vec<(String,)> = cluster
        .query(
            "SELECT n.address FROM delivery d JOIN node n ON n.id = d.claimed_by
             WHERE d.status = 3",
        )
        .await;
    assert_eq!(holders.len(), 1, "{holders:?}");
    let holder = cluster
        .nodes
        .iter()
        .position(|n| n.url == format!("http://{}", holders[0].0))
        .expect("the claim names one of the nodes");
    (id, holder)
}

/// Waits for the message's second attempt; returns how long after `from` it arrived.
async fn second_attempt(
    cluster: &Cluster,
    receiver: &Receiver,
    id: &str,
    from: Instant,
) -> Duration {
    let deadline = from + LEASE;
    loop {
        if let Some(at) = receiver.timeline(id).get(1) {
            return at.duration_since(from);
        }
        assert!(
            Instant::now() < deadline,
            "no second attempt within the lease\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The delivery's (status, attempts) as stored.
async fn delivery(cluster: &Cluster) -> (i16, i32) {
    let rows: Vec<(i16, i32)> = cluster.query("SELECT status, attempts FROM delivery").await;
    rows[0]
}

async fn attempt_log(cluster: &Cluster, node: usize, app: &str, msg: &str) -> Vec<Value> {
    let (status, body) = cluster
        .get(node, &format!("/api/v1/app/{app}/attempt/msg/{msg}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

async fn wait_until<F, Fut>(what: &str, cluster: &Cluster, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_claim_is_attempted_again_within_15_seconds() {
    let _serial = SERIAL.lock().await;
    let receiver = Receiver::start().await;
    let (cluster, app) = two_nodes(&receiver).await;
    let (msg, holder) = send_and_find_holder(&cluster, &receiver, &app).await;
    let other = 1 - holder;

    let killed = Instant::now();
    cluster.nodes[holder].kill();
    let took = second_attempt(&cluster, &receiver, &msg, killed).await;
    println!("SIGKILL to the other node's attempt: {took:.2?} (lease: {LEASE:?})");
    assert!(took <= TAKEOVER_BOUND, "took {took:?}");

    wait_until("not delivered", &cluster, || async {
        delivery(&cluster).await == (0, 1)
    })
    .await;
    // The killed node's attempt died with it, unrecorded; the receiver saw both.
    assert_eq!(receiver.timeline(&msg).len(), 2);
    let log = attempt_log(&cluster, other, &app, &msg).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["responseStatusCode"], json!(204));
    // The dead node's row is gone; the survivor counts itself alone and says what it did.
    let nodes: Vec<(String, String)> = cluster.query("SELECT id, address FROM node").await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(format!("http://{}", nodes[0].1), cluster.nodes[other].url);
    let (_, ready) = cluster.get(other, "/api/v1/health/ready").await;
    assert_eq!(ready["nodeId"], json!(nodes[0].0), "{ready}");
    assert_eq!(ready["liveNodes"], json!(1), "{ready}");
    let text = cluster
        .client
        .get(format!("{}/metrics", cluster.nodes[other].url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(|l| l == "hookd_claims_taken_over_total 1"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "hookd_nodes_live 1"), "{text}");
    receiver.release_held();
}

/// A node that was only paused (SIGSTOP) past `node_dead_after_secs` loses its claim; the
/// other node delivers; when it resumes, its own attempt (answered 500) is logged, but the
/// delivery stays delivered: two attempts in the log, one state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_nodes_late_attempt_is_logged_and_changes_nothing() {
    let _serial = SERIAL.lock().await;
    let receiver = Receiver::start().await;
    let (cluster, app) = two_nodes(&receiver).await;
    let (msg, holder) = send_and_find_holder(&cluster, &receiver, &app).await;
    let other = 1 - holder;

    let paused = Instant::now();
    cluster.nodes[holder].signal("STOP");
    let took = second_attempt(&cluster, &receiver, &msg, paused).await;
    println!("SIGSTOP to the other node's attempt: {took:.2?}");
    assert!(took <= TAKEOVER_BOUND, "took {took:?}");
    wait_until("not delivered", &cluster, || async {
        delivery(&cluster).await == (0, 1)
    })
    .await;

    // The paused node's held request is answered 500 before it resumes.
    receiver.release_held();
    cluster.nodes[holder].signal("CONT");
    wait_until(
        "the paused node's attempt was not logged",
        &cluster,
        || async { attempt_log(&cluster, other, &app, &msg).await.len() == 2 },
    )
    .await;
    let log = attempt_log(&cluster, other, &app, &msg).await;
    let mut codes: Vec<i64> = log
        .iter()
        .map(|a| a["responseStatusCode"].as_i64().unwrap())
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, [204, 500], "{log:?}");
    // Its failure did not schedule a retry nor count as the delivery's attempt.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(delivery(&cluster).await, (0, 1));
    assert_eq!(receiver.timeline(&msg).len(), 2, "attempted a third time");
    // It beats again, and counts as live.
    wait_until("the paused node did not come back", &cluster, || async {
        cluster
            .query::<(String,)>("SELECT id FROM node")
            .await
            .len()
            == 2
    })
    .await;
    assert!(cluster.nodes[holder].alive());
}

/// SIGTERM: the node lets its attempt run for the shutdown grace period (2 s here), gives
/// the claim back, leaves the node table, and the other node attempts it at once, without
/// waiting for a heartbeat to go stale or a lease to run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_cleanly_gives_back_its_claim_at_once() {
    let _serial = SERIAL.lock().await;
    let receiver = Receiver::start().await;
    let (cluster, app) = two_nodes(&receiver).await;
    let (msg, holder) = send_and_find_holder(&cluster, &receiver, &app).await;

    let stopping = Instant::now();
    assert!(
        cluster.nodes[holder].stop().await,
        "no clean exit:\n{}",
        cluster.nodes[holder].log_tail()
    );
    let exited = stopping.elapsed();
    let nodes: Vec<(String,)> = cluster.query("SELECT id FROM node").await;
    assert_eq!(nodes.len(), 1, "the stopped node's row is left: {nodes:?}");
    let took = second_attempt(&cluster, &receiver, &msg, stopping).await;
    println!("SIGTERM to the other node's attempt: {took:.2?} (exited after {exited:.2?})");
    // The grace period (2 s) and a margin, well short of dead-after (10 s) or the lease.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    wait_until("not delivered", &cluster, || async {
        delivery(&cluster).await == (0, 1)
    })
    .await;
    receiver.release_held();
}
