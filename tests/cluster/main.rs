//! Several real `hookd serve` processes on one PostgreSQL database (the "done when"):
//! messages sent through every node's API are delivered exactly once; with a node killed
//! mid-run, at least once (the duplicates are counted and printed); and with every database
//! session ended again and again mid-load, the nodes recover by themselves, every accepted
//! message is delivered, and requests meanwhile get 503 or succeed, never hang or crash.
//!
//! Needs PostgreSQL (see `tests/support/pg.rs`): these tests fail when it is unreachable.
//! They run one at a time, each on a fresh database. Figures are printed; see them with
//! `cargo test --test cluster -- --nocapture`.

mod nodes;
#[path = "../support/pg.rs"]
#[expect(dead_code, reason = "these tests need PostgreSQL: they never skip")]
mod pg;
mod receiver;
mod takeover;
mod tokens;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use nodes::Cluster;
use receiver::Receiver;

const MESSAGES: usize = 5_000;
const APPS: usize = 5;
/// Requests in flight at once, spread over the nodes.
const CONCURRENCY: usize = 48;
/// The longest a run may take to deliver everything: a killed node's claims come back after
/// their lease (max_request_timeout_secs 2 s + 30 s).
const DELIVERY_DEADLINE: Duration = Duration::from_secs(90);

/// One cluster test at a time: they share two cores with the database.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the clients saw.
#[derive(Default)]
struct Sent {
    accepted: Mutex<Vec<String>>,
    unavailable: AtomicUsize,
    /// Requests to a node that was killed while they were in flight; sent again elsewhere.
    lost_with_node: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Sent {
    fn accepted(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }
}

/// Sends up to `count` messages (stopping early at `until`), round-robin over the nodes not
/// marked `dead`; a 503 is retried after a pause, as a client would.
async fn send(
    cluster: &Cluster,
    apps: &[String],
    count: usize,
    until: Option<Instant>,
    dead: &[AtomicBool],
    sent: &Sent,
) {
    futures::stream::iter(0..count)
        .for_each_concurrent(CONCURRENCY, |i| async move {
            if until.is_some_and(|u| Instant::now() >= u) {
                return;
            }
            let path = format!("/api/v1/app/{}/msg", apps[i % APPS]);
            let body = json!({"eventType": "load", "payload": {"i": i}});
            for attempt in 0.. {
                if attempt == 1000 {
                    sent.failures
                        .lock()
                        .unwrap()
                        .push(format!("message {i}: gave up after 1000 tries"));
                    return;
                }
                let node = (i + attempt) % cluster.nodes.len();
                if dead[node].load(Ordering::SeqCst) {
                    continue;
                }
                match cluster.post(node, &path, &body).await {
                    Ok((StatusCode::ACCEPTED, message)) => {
                        let id = message["id"].as_str().unwrap_or_default().to_owned();
                        sent.accepted.lock().unwrap().push(id);
                        return;
                    }
                    Ok((StatusCode::SERVICE_UNAVAILABLE, _)) => {
                        sent.unavailable.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(_) if dead[node].load(Ordering::SeqCst) => {
                        sent.lost_with_node.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((status, body)) => {
                        sent.failures
                            .lock()
                            .unwrap()
                            .push(format!("{status}: {body}"));
                        return;
                    }
                    Err(e) => {
                        sent.failures
                            .lock()
                            .unwrap()
                            .push(format!("no answer: {e}"));
                        return;
                    }
                }
            }
        })
        .await;
}

/// Waits until every accepted message reached the receiver and no delivery is unfinished;
/// returns how long that took.
async fn wait_delivered(cluster: &Cluster, receiver: &Receiver, sent: &Sent) {
    let accepted = sent.accepted.lock().unwrap().clone();
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    loop {
        let counts = receiver.counts();
        let missing = accepted
            .iter()
            .filter(|id| !counts.contains_key(*id))
            .count();
        if missing == 0 && cluster.unfinished_deliveries().await == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} accepted messages were not delivered in time\n{}",
            accepted.len(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Message ids delivered more than once.
fn duplicates(receiver: &Receiver) -> usize {
    receiver.counts().values().filter(|n| **n > 1).count()
}

fn no_dead(n: usize) -> Vec<AtomicBool> {
    (0..n).map(|_| AtomicBool::new(false)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_every_message_exactly_once() {
    let _serial = SERIAL.lock().await;
    let receiver = Receiver::start().await;
    let cluster = Cluster::start(3).await;
    let apps = cluster.create_apps(APPS, &receiver.url()).await;
    let (sent, dead) = (Sent::default(), no_dead(3));

    let started = Instant::now();
    send(&cluster, &apps, MESSAGES, None, &dead, &sent).await;
    let ingested = started.elapsed();
    assert!(
        sent.failures.lock().unwrap().is_empty(),
        "{:?}",
        sent.failures.lock().unwrap()
    );
    assert_eq!(sent.accepted(), MESSAGES);
    wait_delivered(&cluster, &receiver, &sent).await;
    let delivered = started.elapsed();

    println!(
        "3 nodes: {MESSAGES} messages accepted in {ingested:.1?} ({:.0}/s), all delivered in \
         {delivered:.1?} ({:.0}/s end to end); 503s: {}",
        MESSAGES as f64 / ingested.as_secs_f64(),
        MESSAGES as f64 / delivered.as_secs_f64(),
        sent.unavailable.load(Ordering::Relaxed)
    );
    assert_eq!(receiver.distinct(), MESSAGES);
    assert_eq!(duplicates(&receiver), 0, "a message was delivered twice");
    for node in &cluster.nodes {
        assert!(
            node.stop().await,
            "a node did not stop gracefully:\n{}",
            node.log_tail()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let receiver = Receiver::start().await;
    let cluster = Cluster::start(3).await;
    let apps = cluster.create_apps(APPS, &receiver.url()).await;
    let (sent, dead) = (Sent::default(), no_dead(3));

    let started = Instant::now();
    let killer = async {
        // SIGKILL the third node once a third of the messages have been delivered.
        while receiver.distinct() < MESSAGES / 3 {
            assert!(
                started.elapsed() < DELIVERY_DEADLINE,
                "deliveries never started"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        dead[2].store(true, Ordering::SeqCst);
        cluster.nodes[2].kill();
        println!("killed node 3 after {:.1?}", started.elapsed());
    };
    tokio::join!(send(&cluster, &apps, MESSAGES, None, &dead, &sent), killer);
    assert!(
        sent.failures.lock().unwrap().is_empty(),
        "{:?}",
        sent.failures.lock().unwrap()
    );
    assert_eq!(sent.accepted(), MESSAGES);
    wait_delivered(&cluster, &receiver, &sent).await;

    let dups = duplicates(&receiver);
    println!(
        "node killed: {MESSAGES} accepted, all delivered in {:.1?}; {} requests lost with the \
         node and sent again; {dups} messages delivered twice (attempts in flight on the \
         killed node), {} delivered without a 202 (accepted as the node died)",
        started.elapsed(),
        sent.lost_with_node.load(Ordering::Relaxed),
        receiver.distinct() - MESSAGES
    );
    // Only attempts in flight on the killed node can repeat: at most its concurrency (64).
    assert!(dups <= 64, "{dups} duplicates");
    assert!(cluster.nodes[0].alive() && cluster.nodes[1].alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_recover_when_every_session_is_ended() {
    let _serial = SERIAL.lock().await;
    let receiver = Receiver::start().await;
    let cluster = Cluster::start(3).await;
    let apps = cluster.create_apps(APPS, &receiver.url()).await;
    let (sent, dead) = (Sent::default(), no_dead(3));

    let started = Instant::now();
    let until = started + Duration::from_secs(7);
    let outage = async {
        // From 2 s to 4 s into the load, end every session of the database every 100 ms.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (mut rounds, mut ended) = (0, 0);
        while started.elapsed() < Duration::from_secs(4) {
            ended += cluster.database.terminate_connections().await.unwrap();
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (rounds, ended)
    };
    let (_, (rounds, ended)) = tokio::join!(
        send(&cluster, &apps, 1_000_000, Some(until), &dead, &sent),
        outage
    );
    let failures = sent.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} requests failed otherwise than 503: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        cluster.logs()
    );
    for node in &cluster.nodes {
        assert!(node.alive(), "a node crashed:\n{}", node.log_tail());
    }
    wait_delivered(&cluster, &receiver, &sent).await;
    println!(
        "sessions ended: {ended} sessions in {rounds} rounds; {} messages accepted, {} answers \
         503 meanwhile, all accepted delivered {:.1?} after the start; {} delivered twice",
        sent.accepted(),
        sent.unavailable.load(Ordering::Relaxed),
        started.elapsed(),
        duplicates(&receiver)
    );
    assert!(ended > 0, "no session was ended");
    for node in &cluster.nodes {
        assert!(node.alive(), "a node crashed:\n{}", node.log_tail());
    }
}

/// `throttleRate` holds for the sum over the nodes: two nodes deliver an endpoint's backlog
/// at its rate, not twice it. `HOOKD_TEST_THROTTLE_SECS` (default 4) sets how long the
/// backlog lasts at the rate; 60 measures it over a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_an_endpoints_throttle_rate() {
    const RATE: usize = 20;
    let _serial = SERIAL.lock().await;
    let secs: usize = std::env::var("HOOKD_TEST_THROTTLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let receiver = Receiver::start().await;
    let cluster = Cluster::start(2).await;
    let (status, app) = cluster
        .post(0, "/api/v1/app", &json!({"name": "throttled"}))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED);
    let app_id = app["id"].as_str().unwrap();
    let endpoint = json!({"url": receiver.url(), "throttleRate": RATE});
    let path = format!("/api/v1/app/{app_id}/endpoint");
    let (status, _) = cluster.post(1, &path, &endpoint).await.unwrap();
    assert_eq!(status, StatusCode::CREATED);

    // A full bucket goes at once; the rest takes `secs` at the rate.
    let messages = RATE * (secs + 1);
    let started = Instant::now();
    send_alternating(&cluster, app_id, messages, 16).await;
    let deadline = Instant::now() + Duration::from_secs(secs as u64 * 2 + 30);
    while receiver.distinct() < messages {
        assert!(
            Instant::now() < deadline,
            "not all delivered\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrivals = receiver.arrivals();
    let elapsed = arrivals.last().unwrap().duration_since(started);
    // Past the first second (the full bucket, and the messages still being sent), what
    // arrived per second: the rate, whatever the number of nodes.
    let first_second = started + Duration::from_secs(1);
    let later = arrivals.iter().filter(|t| **t >= first_second).count();
    let rate = later as f64
        / arrivals
            .last()
            .unwrap()
            .duration_since(first_second)
            .as_secs_f64();
    println!(
        "2 nodes, throttleRate {RATE}/s: {messages} deliveries in {elapsed:.2?}, \
         {rate:.2}/s after the first second"
    );
    assert_eq!(duplicates(&receiver), 0);
    assert!(
        elapsed >= Duration::from_secs_f64(secs as f64 * 0.95),
        "{messages} at {RATE}/s took {elapsed:?}: each node kept its own rate?"
    );
    assert!(
        (RATE as f64 * 0.9..=RATE as f64 * 1.1).contains(&rate),
        "{rate:.2}/s at throttleRate {RATE}"
    );
    for node in &cluster.nodes {
        assert!(node.stop().await, "{}", node.log_tail());
    }
}

/// A FIFO endpoint shared by two nodes: messages sent through both go out one at a time, in
/// the order they were committed, and a failing head (every 7th message's first attempt is
/// answered 500, retried a second later) holds the line on both nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_keep_a_fifo_endpoints_order() {
    const MESSAGES: usize = 100;
    let _serial = SERIAL.lock().await;
    let receiver = Receiver::start().await;
    let cluster = Cluster::start(2).await;
    let (status, app) = cluster
        .post(0, "/api/v1/app", &json!({"name": "ordered"}))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED);
    let app_id = app["id"].as_str().unwrap();
    let endpoint = json!({"url": receiver.ordered_url(), "ordering": "fifo"});
    let path = format!("/api/v1/app/{app_id}/endpoint");
    let (status, _) = cluster.post(1, &path, &endpoint).await.unwrap();
    assert_eq!(status, StatusCode::CREATED);

    send_alternating(&cluster, app_id, MESSAGES, 8).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let runs = |ids: &[String]| {
        let mut runs = ids.to_vec();
        runs.dedup();
        runs
    };
    while runs(&receiver.sequence().0).len() < MESSAGES {
        assert!(
            Instant::now() < deadline,
            "not all delivered\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (sequence, most_at_once) = receiver.sequence();
    let queued: Vec<(String,)> = cluster
        .query("SELECT msg_id FROM delivery ORDER BY id")
        .await;
    let queued: Vec<String> = queued.into_iter().map(|(id,)| id).collect();
    assert_eq!(runs(&sequence), queued, "delivered out of order");
    assert_eq!(most_at_once, 1, "two deliveries overlapped");
    assert_eq!(
        sequence.len(),
        MESSAGES + MESSAGES / 7,
        "one retry per 7th message"
    );
    for node in &cluster.nodes {
        assert!(node.alive(), "a node crashed:\n{}", node.log_tail());
    }
}

/// Sends `n` messages to `app_id`, `concurrency` at a time, through the first two nodes in
/// turn; each must be accepted.
async fn send_alternating(cluster: &Cluster, app_id: &str, n: usize, concurrency: usize) {
    futures::stream::iter(0..n)
        .for_each_concurrent(concurrency, |i| {
            let path = format!("/api/v1/app/{app_id}/msg");
            async move {
                let body = json!({"eventType": "t", "payload": {"i": i}});
                let (status, _) = cluster.post(i % 2, &path, &body).await.unwrap();
                assert_eq!(status, StatusCode::ACCEPTED);
            }
        })
        .await;
}
