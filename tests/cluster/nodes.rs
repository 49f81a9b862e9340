//! Real `hookd serve` processes on one PostgreSQL database, and a client for their APIs.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

use crate::pg::TestDatabase;

/// How long a client waits for any answer: a request slower than this is a hang.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Node {
    pub url: String,
    child: Mutex<Child>,
    log: PathBuf,
}

impl Node {
    fn child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the process is still running.
    pub fn alive(&self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child().id();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// SIGKILL: the node dies with whatever it had in flight.
    pub fn kill(&self) {
        let mut child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM, then waits for a graceful exit; returns whether it exited 0 in time.
    pub async fn stop(&self) -> bool {
        let pid = self.child().id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child().try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
        false
    }

    /// The last lines the node logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub token: String,
    pub client: reqwest::Client,
    pub database: TestDatabase,
    _dir: TempDir,
}

impl Cluster {
    /// Starts `n` nodes (role all) on a fresh database and waits until each is healthy.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, &[]).await
    }

    /// As [`Cluster::start`], with `HOOKD_*` variables set over the tests' defaults.
    pub async fn start_with(n: usize, env: &[(&str, &str)]) -> Cluster {
        let database = TestDatabase::require().await;
        let dir = tempfile::tempdir().unwrap();
        let token = hookd::api::generate_token();
        let mut nodes = Vec::new();
        for i in 0..n {
            nodes.push(spawn_node(&database.url, &token, &dir, i, env));
        }
        let client = reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .unwrap();
        let cluster = Cluster {
            nodes,
            token,
            client,
            database,
            _dir: dir,
        };
        for node in &cluster.nodes {
            cluster.wait_healthy(node).await;
        }
        cluster
    }

    async fn wait_healthy(&self, node: &Node) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self
                .client
                .get(format!("{}/api/v1/health", node.url))
                .send();
            if let Ok(r) = health.await {
                if r.status() == StatusCode::NO_CONTENT {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not become healthy:\n{}",
                node.url,
                node.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs `body` to `path` on node `i`: the status, or `Err` for no answer.
    pub async fn post(
        &self,
        i: usize,
        path: &str,
        body: &Value,
    ) -> Result<(StatusCode, Value), String> {
        let response = self
            .client
            .post(format!("{}{path}", self.nodes[i].url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Creates `apps` applications with one endpoint each, delivering to `url`.
    pub async fn create_apps(&self, apps: usize, url: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for a in 0..apps {
            let (status, app) = self
                .post(
                    a % self.nodes.len(),
                    "/api/v1/app",
                    &json!({"name": format!("app {a}")}),
                )
                .await
                .unwrap();
            assert_eq!(status, StatusCode::CREATED, "{app}");
            let id = app["id"].as_str().unwrap().to_owned();
            let path = format!("/api/v1/app/{id}/endpoint");
            let (status, endpoint) = self.post(0, &path, &json!({"url": url})).await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "{endpoint}");
            ids.push(id);
        }
        ids
    }

    /// Deliveries not yet successful (pending, sending or failed), read from the database.
    pub async fn unfinished_deliveries(&self) -> Option<i64> {
        let mut conn = PgConnection::connect(&self.database.url).await.ok()?;
        sqlx::query_scalar("SELECT count(*) FROM delivery WHERE status <> 0")
            .fetch_one(&mut conn)
            .await
            .ok()
    }

    /// GETs `path` on node `i`: the status and body.
    pub async fn get(&self, i: usize, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.nodes[i].url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A query's rows, read from the database.
    pub async fn query<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let mut conn = PgConnection::connect(&self.database.url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {}\n{}", n.url, n.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn spawn_node(
    database_url: &str,
    token: &str,
    dir: &TempDir,
    i: usize,
    env: &[(&str, &str)],
) -> Node {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let listen = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join(format!("node-{i}-{n}.log"));
    let data_dir = dir.path().join(format!("data-{i}"));
    let child = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["serve", "--listen", &listen])
        .env("HOOKD_DATABASE_URL", database_url)
        .env("HOOKD_DATA_DIR", &data_dir)
        .env("HOOKD_ADMIN_TOKEN", token)
        .env("HOOKD_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("HOOKD_RETRY_SCHEDULE", "1,1,1,1,1,1,1,1,1,1")
        .env("HOOKD_REQUEST_TIMEOUT_SECS", "2")
        .env("HOOKD_MAX_REQUEST_TIMEOUT_SECS", "2")
        .env("HOOKD_SHUTDOWN_TIMEOUT_SECS", "2")
        .env("HOOKD_DELIVERY_CONCURRENCY", "64")
        .env("HOOKD_DATABASE_POOL_MAX", "8")
        .env("HOOKD_LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("cannot start hookd");
    Node {
        url: format!("http://{listen}"),
        child: Mutex::new(child),
        log,
    }
}
