//! The hookd under test: a `hookd serve` process on a fresh data directory (or a running
//! hookd given by URL), and the API calls that set up applications and endpoints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Hookd {
    pub addr: SocketAddr,
    pub token: String,
    /// The process, when the benchmark started it (CPU and memory are read from it).
    pub pid: Option<u32>,
    child: Option<Child>,
    _data_dir: Option<tempfile::TempDir>,
}

pub struct Launch<'a> {
    pub binary: &'a Path,
    pub database_url: Option<String>,
    pub retry_schedule: &'a str,
    /// The data directory of a hookd stopped before ([`Hookd::stop`]), to start on its
    /// store again; `None`: a fresh one.
    pub data_dir: Option<tempfile::TempDir>,
    /// `HOOKD_*` options set besides the benchmark's own (`HOOKD_RETENTION_DAYS`, ...).
    pub env: Vec<(String, String)>,
    /// The address to listen on (a restarted node keeps its own); `None`: a free port.
    pub listen: Option<SocketAddr>,
}

impl Hookd {
    pub async fn launch(launch: Launch<'_>) -> anyhow::Result<Self> {
        let data_dir = match launch.data_dir {
            Some(dir) => dir,
            None => tempfile::tempdir()?,
        };
        let addr = match launch.listen {
            Some(addr) => addr,
            None => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?,
        };
        let token = format!("hk_bench_{}", std::process::id());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.path().join("hookd.log"))?;
        let mut command = Command::new(launch.binary);
        // hookd refuses HOOKD_* variables it does not know; start from a clean slate.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HOOKD_") {
                command.env_remove(key);
            }
        }
        command
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(data_dir.path())
            .env("HOOKD_ADMIN_TOKEN", &token)
            .env("HOOKD_ALLOWED_NETWORKS", "127.0.0.0/8")
            .env("HOOKD_RETRY_SCHEDULE", launch.retry_schedule)
            .env("HOOKD_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(url) = &launch.database_url {
            command.env("HOOKD_DATABASE_URL", url);
        }
        command.envs(launch.env);
        let child = command.spawn()?;
        let mut hookd = Self {
            addr,
            token,
            pid: Some(child.id()),
            child: Some(child),
            _data_dir: Some(data_dir),
        };
        hookd.wait_healthy().await?;
        Ok(hookd)
    }

    pub async fn remote(addr: SocketAddr, token: String, pid: Option<u32>) -> anyhow::Result<Self> {
        let mut hookd = Self {
            addr,
            token,
            pid,
            child: None,
            _data_dir: None,
        };
        hookd.wait_healthy().await?;
        Ok(hookd)
    }

    /// Stops the process with SIGTERM (a graceful shutdown, as an operator's restart would)
    /// and returns its data directory, whose store a later [`Hookd::launch`] can start on.
    pub async fn stop(mut self) -> anyhow::Result<Option<tempfile::TempDir>> {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    anyhow::bail!("hookd did not stop within a minute of SIGTERM");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(self._data_dir.take())
    }

    /// The store's file (SQLite) in the data directory of a hookd this benchmark started.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self._data_dir.as_ref().map(|d| d.path().join("hookd.db"))
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        // Long enough for a start on a store of millions of rows.
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!("hookd exited ({status}) before it was healthy");
            }
            if let Ok((204, _)) = self.call(Method::GET, "/api/v1/health", None).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("hookd at {} did not become healthy", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One API call on a fresh connection; returns the status and body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let stream = TcpStream::connect(self.addr).await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    /// Creates `apps` applications with `fanout` endpoints each at `url_of(app, index)`,
    /// with the fields of `extra` (`ordering`, `signature`); returns the application uids.
    ///
    /// The uids are new on every call, so repeated runs against one running hookd (`--url`)
    /// never add endpoints to a previous run's applications, whose receivers are gone.
    pub async fn setup(
        &self,
        apps: usize,
        fanout: usize,
        extra: &serde_json::Map<String, serde_json::Value>,
        url_of: impl Fn(usize, usize) -> String,
    ) -> anyhow::Result<Vec<String>> {
        let mut uids = Vec::with_capacity(apps);
        let run = crate::now_micros();
        for a in 0..apps {
            let uid = format!("bench-{run}-{a}");
            let (status, body) = self
                .call(
                    Method::POST,
                    "/api/v1/app?get_if_exists=true",
                    Some(serde_json::json!({"name": uid, "uid": uid})),
                )
                .await?;
            anyhow::ensure!(status < 300, "creating app {uid}: {status} {body:?}");
            for k in 0..fanout {
                let (status, body) = self
                    .call(
                        Method::POST,
                        &format!("/api/v1/app/{uid}/endpoint"),
                        Some({
                            let mut body = extra.clone();
                            body.insert("url".into(), url_of(a, k).into());
                            serde_json::Value::Object(body)
                        }),
                    )
                    .await?;
                anyhow::ensure!(status < 300, "creating an endpoint: {status} {body:?}");
            }
            uids.push(uid);
        }
        Ok(uids)
    }
}

impl Drop for Hookd {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The release `hookd` binary next to this one, built first if `build` is set: into this
/// binary's own target directory, so that a benchmark run outside cargo, from another
/// target directory than the checkout's, runs the hookd it has just built.
pub fn binary(build: bool) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name("hookd");
    if build {
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "hookd",
            "--bin",
            "hookd",
        ]);
        // <target>/release/hookd-bench
        if let Some(target) = me.parent().and_then(|release| release.parent()) {
            cargo.arg("--target-dir").arg(target);
        }
        let status = cargo.status()?;
        anyhow::ensure!(status.success(), "building hookd failed");
    }
    anyhow::ensure!(path.exists(), "no hookd binary at {}", path.display());
    Ok(path)
}

/// A fresh PostgreSQL database for one run, created and dropped with `psql`.
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub fn create(admin_url: &str, tag: &str) -> anyhow::Result<Self> {
        let name = format!("hookd_bench_{tag}_{}", std::process::id());
        psql(admin_url, &format!("CREATE DATABASE {name}"))?;
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(admin_url);
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql").args([url, "-qAtc", sql]).output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
