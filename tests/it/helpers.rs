//! `TestApp`: a real hookd server on a free port with its own data directory, and a client
//! that talks to it over HTTP.
//!
//! Each test starts its own server (`TestApp::spawn().await`), so tests never share state and
//! run in parallel. The store is SQLite in a fresh data directory, or a fresh PostgreSQL
//! database with `.with_postgres()`; `HOOKD_TEST_BACKEND=postgres` makes PostgreSQL the
//! default, so the whole suite runs on it (`HOOKD_TEST_BACKEND=postgres cargo test --test it`),
//! and `HOOKD_TEST_MAIN_KEY=1` gives every server a main key (secrets encrypted at rest). The
//! server runs on the test's tokio runtime: a test that ends (or panics)
//! without calling `stop()` takes the server down with its runtime, so nothing is left
//! running to hang the test binary.

use std::net::SocketAddr;
use std::sync::{Arc, Once};

use hookd::app::Server;
use hookd::config::Config;
use hookd::delivery::clock::{Clock, SystemClock};
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::pg::TestDatabase;

type ConfigEdit = Box<dyn FnOnce(&mut Config) + Send>;

/// The store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `HOOKD_TEST_BACKEND` (`sqlite`, the default, or `postgres`).
    pub fn from_env() -> Backend {
        match std::env::var("HOOKD_TEST_BACKEND").as_deref() {
            Ok("postgres") | Ok("postgresql") => Backend::Postgres,
            Ok("sqlite") | Ok("") | Err(_) => Backend::Sqlite,
            Ok(other) => panic!("HOOKD_TEST_BACKEND={other:?}: use sqlite or postgres"),
        }
    }
}

/// Builds a [`TestApp`]. Everything about the server under test is chosen here, before it
/// starts: the configuration, the clock, and the database backend (SQLite in the data
/// directory, or a fresh PostgreSQL database; [`Backend::from_env`] by default).
pub struct TestAppBuilder {
    config_edits: Vec<ConfigEdit>,
    clock: Option<Arc<dyn Clock>>,
    backend: Backend,
}

impl Default for TestAppBuilder {
    fn default() -> Self {
        Self {
            config_edits: Vec::new(),
            clock: None,
            backend: Backend::from_env(),
        }
    }
}

impl TestAppBuilder {
    /// Changes the configuration after the test defaults (free port, fresh data directory,
    /// random admin token) are set, so a test can override any of them.
    pub fn with_config(mut self, edit: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.config_edits.push(Box::new(edit));
        self
    }

    /// Lets deliveries (receivers on 127.0.0.1) through the SSRF guard.
    pub fn delivering_to_loopback(self) -> Self {
        self.with_config(|c| c.allowed_networks = vec!["127.0.0.0/8".into()])
    }

    /// Runs on a fresh PostgreSQL database (dropped when the `TestApp` is), whatever
    /// `HOOKD_TEST_BACKEND` says. Fails the test if PostgreSQL cannot be reached.
    pub fn with_postgres(mut self) -> Self {
        self.backend = Backend::Postgres;
        self
    }

    /// Runs on SQLite in the data directory, whatever `HOOKD_TEST_BACKEND` says.
    pub fn with_sqlite(mut self) -> Self {
        self.backend = Backend::Sqlite;
        self
    }

    /// The dispatcher reads time from `clock` (a `ManualClock` for retry schedules).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    pub async fn spawn(self) -> TestApp {
        init_logs();
        let data_dir = tempfile::tempdir().expect("cannot create a temporary data directory");
        let mut config = Config::defaults();
        config.listen = "127.0.0.1:0".parse().expect("valid address");
        config.data_dir = data_dir.path().to_owned();
        config.admin_token = hookd::api::generate_token();
        config.shutdown_timeout_secs = 5;
        // `HOOKD_TEST_MAIN_KEY=1`: every server encrypts secrets at rest, to run any part of
        // the suite through that path. One key for the whole run, as the nodes of one
        // deployment share theirs (tests start several on one database).
        if std::env::var("HOOKD_TEST_MAIN_KEY").is_ok_and(|v| !v.is_empty() && v != "0") {
            static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            config.main_key = KEY
                .get_or_init(hookd::signing::at_rest::generate_main_key)
                .clone();
        }
        let database = match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let database = TestDatabase::require().await;
                config.database_url = database.url.clone();
                config.database_pool_max = 6;
                Some(database)
            }
        };
        for edit in self.config_edits {
            edit(&mut config);
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let server = Server::start_with_clock(config.clone(), clock.clone())
            .await
            .expect("the server failed to start");
        TestApp {
            clock,
            addr: server.addr,
            token: config.admin_token.clone(),
            client: reqwest::Client::new(),
            config,
            server: Some(server),
            _data_dir: data_dir,
            database,
        }
    }
}

/// Logs of the servers under test go to stderr when `HOOKD_TEST_LOG` holds a filter
/// (`HOOKD_TEST_LOG=debug cargo test --test it -- --nocapture`).
fn init_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("HOOKD_TEST_LOG") {
            let mut config = Config::defaults();
            config.log_level = filter;
            hookd::telemetry::init(&config);
        }
    });
}

pub struct TestApp {
    pub addr: SocketAddr,
    clock: Arc<dyn Clock>,
    /// The admin token every helper but [`TestApp::raw_request`] sends.
    pub token: String,
    pub client: reqwest::Client,
    config: Config,
    server: Option<Server>,
    /// Deleted when the app is dropped; kept across `restart`.
    _data_dir: TempDir,
    /// The PostgreSQL database, if the app runs on one; dropped after the server.
    database: Option<TestDatabase>,
}

impl TestApp {
    /// A server with the test defaults.
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// The configuration the server runs with (its data directory, token, limits).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The PostgreSQL database the server runs on, if it does.
    pub fn database(&self) -> Option<&TestDatabase> {
        self.database.as_ref()
    }

    /// Where `GET /metrics` is served when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().and_then(|s| s.metrics_addr)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts the server down gracefully; the data directory is removed when `self` drops.
    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    /// Stops the server and starts a new one on the same data directory and token (on a new
    /// port), as an operator restarting hookd would.
    pub async fn restart(&mut self) {
        self.shut_down().await;
        let server = Server::start_with_clock(self.config.clone(), self.clock.clone())
            .await
            .expect("the server failed to restart");
        self.addr = server.addr;
        self.server = Some(server);
    }

    /// As [`TestApp::restart`], with the configuration changed first (e.g. a new main key).
    pub async fn restart_with(&mut self, edit: impl FnOnce(&mut Config)) {
        edit(&mut self.config);
        self.restart().await;
    }

    /// Stops the server and keeps its data for a later `restart`.
    pub async fn stop_keeping_data(&mut self) {
        self.shut_down().await;
    }

    async fn shut_down(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("the server failed to stop");
        }
    }

    /// A request to `path` with nothing added: no token, no body. For tests of
    /// authentication, non-JSON bodies and custom headers; send it with [`send`].
    pub fn raw_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base_url()))
    }

    /// Sends `body` (if any) as JSON with the admin token; returns the status and the JSON
    /// body (`Null` when empty).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.raw_request(method, path).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.request(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.request(Method::PUT, path, body).await
    }

    pub async fn patch(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.request(Method::PATCH, path, body).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, None).await
    }

    /// Creates an application from `body` (at least `{"name": …}`); panics unless 201.
    pub async fn create_app(&self, body: Value) -> Value {
        let (status, app) = self.post("/api/v1/app", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "creating an app: {app}");
        app
    }

    /// Creates an endpoint in `app` (id or uid); panics unless 201.
    pub async fn create_endpoint(&self, app: &str, body: Value) -> Value {
        let (status, endpoint) = self
            .post(&format!("/api/v1/app/{app}/endpoint"), Some(body))
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating an endpoint: {endpoint}"
        );
        endpoint
    }

    /// Sends a message to `app`; panics unless 202.
    pub async fn create_message(&self, app: &str, body: Value) -> Value {
        let (status, message) = self
            .post(&format!("/api/v1/app/{app}/msg"), Some(body))
            .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "creating a message: {message}"
        );
        message
    }

    /// Every item of a list, following `iterator` until `done`. `path` may carry a query.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut iterator: Option<String> = None;
        loop {
            let page_path = match &iterator {
                None => path.to_owned(),
                Some(it) => format!("{path}{separator}iterator={}", encode(it)),
            };
            let (status, page) = self.get(&page_path).await;
            assert_eq!(status, StatusCode::OK, "listing {page_path}: {page}");
            items.extend(page["data"].as_array().expect("data is a list").clone());
            if page["done"] == json!(true) {
                return items;
            }
            iterator = Some(page["iterator"].as_str().expect("iterator").to_owned());
        }
    }
}

/// Sends `request` and returns its status and body. Every body hookd sends is JSON, so a
/// non-empty body that is not (or is not labelled as such) fails the test.
pub async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the request failed");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.bytes().await.expect("unreadable response body");
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    assert!(
        content_type.starts_with("application/json"),
        "{status} response has content-type {content_type:?}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status} response is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, body)
}

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The `id`s of a list of items.
pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().expect("item has an id").to_owned())
        .collect()
}

/// Asserts an error body of the `{"code", "detail"}` shape, with the given code.
#[track_caller]
pub fn assert_http_error(body: &Value, code: &str) {
    assert_eq!(body["code"], json!(code), "error body: {body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "error body without a detail: {body}"
    );
}

/// Asserts a 422 body whose first problem is at `loc`.
#[track_caller]
pub fn assert_validation_error(body: &Value, loc: &[&str]) {
    let first = &body["detail"][0];
    assert_eq!(first["loc"], json!(loc), "validation body: {body}");
    assert!(first["msg"].is_string(), "validation body: {body}");
    assert!(first["type"].is_string(), "validation body: {body}");
}

/// Polls `check` until it gives a value: for state the server reaches asynchronously (an
/// attempt being recorded after the receiver answered). Panics after 20 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Runs each check, an `async fn(TestAppBuilder)`, once on SQLite and once on PostgreSQL, as
/// tests named `on_sqlite::<check>` and `on_postgres::<check>`.
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(crate::helpers::TestApp::builder().with_sqlite()).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(crate::helpers::TestApp::builder().with_postgres()).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// A port free on 127.0.0.1 (for a server a test starts in another process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
