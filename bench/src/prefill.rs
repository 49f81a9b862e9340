//! How the scenarios on a grown store run: hookd on a fresh store, the rows to copy made
//! through its API (an application, endpoints, one delivered message), hookd stopped, the
//! store filled with SQL (`fill`), hookd started again on it.

use std::path::Path;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};

use crate::Args;
use crate::fill::{Originals, StoreAt, Templates};
use crate::hookd::{Hookd, Launch, ScratchDatabase};

/// hookd processes this benchmark started on one store, which outlives their restarts.
pub struct Bed<'a> {
    binary: &'a Path,
    pub scratch: Option<ScratchDatabase>,
    retry_schedule: &'static str,
    env: Vec<(String, String)>,
    /// The running nodes; the first keeps the data directory.
    pub nodes: Vec<Hookd>,
    store: StoreAt,
    data_dir: Option<tempfile::TempDir>,
}

impl<'a> Bed<'a> {
    /// A first node on a fresh store (a fresh PostgreSQL database with `--database-url`).
    pub async fn start(
        args: &Args,
        binary: Option<&'a Path>,
        name: &str,
        retry_schedule: &'static str,
    ) -> anyhow::Result<Bed<'a>> {
        anyhow::ensure!(
            args.url.is_none(),
            "scenario {name} fills hookd's store, so it starts its own hookd (no --url)"
        );
        let binary = binary.ok_or_else(|| anyhow::anyhow!("no hookd binary"))?;
        let scratch = args
            .database_url
            .as_deref()
            .map(|url| ScratchDatabase::create(url, name))
            .transpose()?;
        let first = Hookd::launch(Launch {
            binary,
            database_url: scratch.as_ref().map(|s| s.url.clone()),
            retry_schedule,
            data_dir: None,
            env: Vec::new(),
            listen: None,
        })
        .await?;
        let store = match (&scratch, first.sqlite_path()) {
            (Some(s), _) => StoreAt::Postgres(s.url.clone()),
            (None, Some(path)) => StoreAt::Sqlite(path),
            (None, None) => anyhow::bail!("hookd has no store this benchmark can fill"),
        };
        Ok(Bed {
            binary,
            scratch,
            retry_schedule,
            env: Vec::new(),
            nodes: vec![first],
            store,
            data_dir: None,
        })
    }

    pub fn store(&self) -> &StoreAt {
        &self.store
    }

    pub fn postgres(&self) -> bool {
        self.scratch.is_some()
    }

    /// The first node.
    pub fn hookd(&self) -> &Hookd {
        &self.nodes[0]
    }

    /// Options the nodes started from now on get (`HOOKD_RETENTION_DAYS`, ...).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.into(), value.into()));
    }

    /// Stops every node (SIGTERM), keeping the store.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        for node in self.nodes.drain(..) {
            if let Some(dir) = node.stop().await? {
                self.data_dir.get_or_insert(dir);
            }
        }
        Ok(())
    }

    /// Starts a node on the store (the first one gets the data directory back); returns
    /// how long it took from the process's start to its health check answering.
    pub async fn start_node(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let node = self.launch(None).await?;
        self.nodes.push(node);
        Ok(started.elapsed())
    }

    /// Restarts the first node as an operator would: SIGTERM, its exit, a new process on
    /// the same store and address. Returns how long it took to exit, and from the new
    /// process's start to its health check answering.
    pub async fn restart_first(&mut self) -> anyhow::Result<(Duration, Duration)> {
        anyhow::ensure!(!self.nodes.is_empty(), "no node to restart");
        let node = self.nodes.remove(0);
        let listen = node.addr;
        let stopping = Instant::now();
        if let Some(dir) = node.stop().await? {
            self.data_dir.get_or_insert(dir);
        }
        let stopped = stopping.elapsed();
        let started = Instant::now();
        let node = self.launch(Some(listen)).await?;
        self.nodes.insert(0, node);
        Ok((stopped, started.elapsed()))
    }

    async fn launch(&mut self, listen: Option<std::net::SocketAddr>) -> anyhow::Result<Hookd> {
        Hookd::launch(Launch {
            binary: self.binary,
            database_url: self.scratch.as_ref().map(|s| s.url.clone()),
            retry_schedule: self.retry_schedule,
            data_dir: self.data_dir.take(),
            env: self.env.clone(),
            listen,
        })
        .await
    }
}

/// What [`seed`] made.
pub struct Seeded {
    pub app_id: String,
    /// In the order of the bodies given.
    pub endpoint_ids: Vec<String>,
    pub msg_id: String,
}

impl Seeded {
    /// The rows to copy, read from the stopped store: the seed message's delivery and
    /// attempt are those of the first endpoint that accepted it.
    pub fn templates(&self, store: &StoreAt, endpoint: usize) -> anyhow::Result<Templates> {
        Templates::read(
            store,
            &Originals {
                app_id: &self.app_id,
                endpoint_id: &self.endpoint_ids[endpoint],
                msg_id: &self.msg_id,
            },
        )
    }
}

/// Makes the application `uid` with one endpoint per body, sends it one message of
/// `event_type` and waits until its first attempt is recorded.
pub async fn seed(
    hookd: &Hookd,
    uid: &str,
    endpoints: &[Value],
    event_type: &str,
) -> anyhow::Result<Seeded> {
    let app = call(
        hookd,
        Method::POST,
        "/api/v1/app",
        json!({"name": uid, "uid": uid}),
    )
    .await?;
    let app_id = text(&app, "id")?;
    let mut endpoint_ids = Vec::new();
    for body in endpoints {
        let ep = call(
            hookd,
            Method::POST,
            &format!("/api/v1/app/{uid}/endpoint"),
            body.clone(),
        )
        .await?;
        endpoint_ids.push(text(&ep, "id")?);
    }
    let msg = call(
        hookd,
        Method::POST,
        &format!("/api/v1/app/{uid}/msg"),
        json!({"eventType": event_type, "payload": {"seed": true}}),
    )
    .await?;
    let msg_id = text(&msg, "id")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = hookd
            .call(
                Method::GET,
                &format!("/api/v1/app/{uid}/attempt/msg/{msg_id}"),
                None,
            )
            .await?;
        let listed: Value = serde_json::from_slice(&body)?;
        if status == 200 && listed["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the seed message {msg_id} had no attempt after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Seeded {
        app_id,
        endpoint_ids,
        msg_id,
    })
}

/// One API call that must succeed; its JSON answer.
pub async fn call(hookd: &Hookd, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = hookd.call(method, path, Some(body)).await?;
    anyhow::ensure!(
        status < 300,
        "{path}: {status} {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(serde_json::from_slice(&answer)?)
}

fn text(value: &Value, field: &str) -> anyhow::Result<String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no {field} in {value}"))
}
