//! API tokens on two nodes: a token revoked (or expired by `expire-all`) through one node
//! stops working on the other within the sync's second or so, and the hourly rate limit is
//! counted by both nodes together. Each test prints its figures.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::SERIAL;
use crate::nodes::Cluster;

/// How soon a token revoked or expired through one node must stop working on another.
const REVOKED_WITHIN: Duration = Duration::from_secs(3);
/// Long enough for both nodes to sync (once a second) with the store at least twice.
const SYNCED: Duration = Duration::from_millis(2500);
/// How soon a node must refuse a token another node took past its limit: that node's sync
/// then this one's (up to a second each), with some slack for a busy machine.
const LIMIT_SHARED_WITHIN: Duration = Duration::from_secs(3);

/// Sends a request to node `i` with `token`.
async fn send(
    cluster: &Cluster,
    i: usize,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Response {
    let mut request = cluster
        .client
        .request(method.clone(), format!("{}{path}", cluster.nodes[i].url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on node {i}: no answer: {e}"))
}

async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates an application through node 0; returns its id.
async fn create_app(cluster: &Cluster, name: &str) -> String {
    let (status, app) = cluster
        .post(0, "/api/v1/app", &json!({ "name": name }))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{app}");
    app["id"].as_str().unwrap().to_owned()
}

/// Creates a named token through node 0 with the admin token; returns (token, id).
async fn create_token(cluster: &Cluster, body: Value) -> (String, String) {
    let (status, created) = cluster.post(0, "/api/v1/auth/token", &body).await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("tok_"), "{created}");
    (token, id)
}

/// Polls `GET path` on node `i` with `token` until it answers 401; returns how long that
/// took, failing past [`REVOKED_WITHIN`] or on any answer but 200 and 401.
async fn until_unauthorized(cluster: &Cluster, i: usize, path: &str, token: &str) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = json_of(send(cluster, i, Method::GET, path, token, None).await).await;
        match status {
            StatusCode::UNAUTHORIZED => return start.elapsed(),
            StatusCode::OK => {}
            _ => panic!("node {i} answered {status}: {body}\n{}", cluster.logs()),
        }
        assert!(
            start.elapsed() < REVOKED_WITHIN,
            "node {i} still accepts the token after {:?}\n{}",
            start.elapsed(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_node_stops_working_on_the_other() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(2).await;
    let app = create_app(&cluster, "tokens").await;
    let app_path = format!("/api/v1/app/{app}");

    // A named token, revoked through node 0 while node 1 holds it in memory.
    let (token, id) = create_token(
        &cluster,
        json!({"name": "revoked on node 0", "abilities": ["app:read"]}),
    )
    .await;
    for i in [1, 0] {
        let (status, body) =
            json_of(send(&cluster, i, Method::GET, &app_path, &token, None).await).await;
        assert_eq!(status, StatusCode::OK, "node {i}: {body}");
    }
    let revoke = send(
        &cluster,
        0,
        Method::DELETE,
        &format!("/api/v1/auth/token/{id}"),
        &cluster.token,
        None,
    )
    .await;
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    // At once on the node that revoked it.
    let (status, body) =
        json_of(send(&cluster, 0, Method::GET, &app_path, &token, None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "node 0: {body}");
    let named_after = until_unauthorized(&cluster, 1, &app_path, &token).await;
    // And for good: it is not read back from the store.
    let (status, _) = json_of(send(&cluster, 1, Method::GET, &app_path, &token, None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An app portal token, expired by expire-all through node 0.
    let (status, access) = cluster
        .post(
            0,
            &format!("/api/v1/auth/app-portal-access/{app}"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{access}");
    assert!(access["url"].as_str().unwrap().contains(&app), "{access}");
    let portal = access["token"].as_str().unwrap().to_owned();
    for i in [1, 0] {
        let (status, body) =
            json_of(send(&cluster, i, Method::GET, &app_path, &portal, None).await).await;
        assert_eq!(status, StatusCode::OK, "node {i}: {body}");
    }
    let expire = send(
        &cluster,
        0,
        Method::POST,
        &format!("/api/v1/auth/app/{app}/expire-all"),
        &cluster.token,
        Some(&json!({})),
    )
    .await;
    assert_eq!(expire.status(), StatusCode::NO_CONTENT);
    let (status, body) =
        json_of(send(&cluster, 0, Method::GET, &app_path, &portal, None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "node 0: {body}");
    let portal_after = until_unauthorized(&cluster, 1, &app_path, &portal).await;

    println!(
        "revoked named token refused by the other node after {named_after:?}; \
         expired portal token after {portal_after:?} (bound {REVOKED_WITHIN:?})"
    );
}

/// A header of `response` as a number.
fn header(response: &Response, name: &str) -> Option<i64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}

fn unix_now() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap()
}

/// Checks the rate headers of an answer to the token limited to `limit`.
fn check_rate_headers(response: &Response, limit: i64, what: &str) {
    assert_eq!(
        header(response, "x-ratelimit-limit"),
        Some(limit),
        "{what}: {:?}",
        response.headers()
    );
    assert!(
        header(response, "x-ratelimit-remaining").is_some_and(|r| (0..limit).contains(&r)),
        "{what}: {:?}",
        response.headers()
    );
    let reset = header(response, "x-ratelimit-reset").unwrap_or_default();
    assert!(
        reset % 3600 == 0 && reset > unix_now() - 1 && reset <= unix_now() + 3600,
        "{what}: reset {reset} is not the end of this hour: {:?}",
        response.headers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_a_tokens_rate_limit() {
    const LIMIT: i64 = 30;
    const ON_NODE_0: i64 = 15;
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(2).await;
    let app = create_app(&cluster, "rate limited").await;
    let app_path = format!("/api/v1/app/{app}");
    let (token, _) = create_token(
        &cluster,
        json!({"name": "limited", "abilities": ["app:read"], "rateLimit": LIMIT}),
    )
    .await;

    // The test takes about 10 s and must stay in one hour's window.
    let left = 3600 - unix_now().rem_euclid(3600);
    if left <= 20 {
        println!("waiting {left} s for the next hour's window");
        tokio::time::sleep(Duration::from_secs(u64::try_from(left).unwrap() + 1)).await;
    }

    for n in 0..ON_NODE_0 {
        let response = send(&cluster, 0, Method::GET, &app_path, &token, None).await;
        assert_eq!(response.status(), StatusCode::OK, "request {n} on node 0");
        check_rate_headers(&response, LIMIT, "node 0");
    }
    tokio::time::sleep(SYNCED).await;

    let mut on_node_1 = 0;
    let refused = loop {
        let response = send(&cluster, 1, Method::GET, &app_path, &token, None).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            break response;
        }
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "request {on_node_1} on node 1"
        );
        check_rate_headers(&response, LIMIT, "node 1");
        on_node_1 += 1;
        assert!(on_node_1 <= LIMIT, "node 1 accepts past the limit");
    };
    let retry_after = header(&refused, "retry-after");
    let remaining = header(&refused, "x-ratelimit-remaining");
    let limit = header(&refused, "x-ratelimit-limit");
    let reset = header(&refused, "x-ratelimit-reset");
    println!(
        "rate limit {LIMIT}/h: node 0 accepted {ON_NODE_0}, then node 1 accepted {on_node_1} \
         before 429 (Retry-After {retry_after:?}, X-RateLimit-Remaining {remaining:?}, \
         X-RateLimit-Limit {limit:?}, X-RateLimit-Reset {reset:?})"
    );
    assert!(
        (LIMIT - ON_NODE_0 - 2..=LIMIT - ON_NODE_0).contains(&on_node_1),
        "node 1 accepted {on_node_1}, not about {}",
        LIMIT - ON_NODE_0
    );
    assert_eq!(remaining, Some(0));
    assert_eq!(limit, Some(LIMIT));
    let retry_after = retry_after.expect("a 429 without Retry-After");
    assert!(
        (1..=3600).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let reset = reset.expect("a 429 without X-RateLimit-Reset");
    assert!(
        (reset - unix_now() - retry_after).abs() <= 2,
        "X-RateLimit-Reset {reset} and Retry-After {retry_after} disagree"
    );
    let (_, body) = json_of(refused).await;
    assert_eq!(body["code"], "rate_limited", "{body}");

    // Node 0 learns node 1's count at its next sync.
    let start = Instant::now();
    let mut more_on_node_0 = 0;
    loop {
        let response = send(&cluster, 0, Method::GET, &app_path, &token, None).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(header(&response, "x-ratelimit-remaining"), Some(0));
            assert!(header(&response, "retry-after").is_some());
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
        more_on_node_0 += 1;
        assert!(
            start.elapsed() < LIMIT_SHARED_WITHIN,
            "node 0 still accepts the token {:?} after node 1 refused it",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "node 0 refused the token {:?} after node 1 did, having accepted {more_on_node_0} more \
         meanwhile",
        start.elapsed()
    );
}
