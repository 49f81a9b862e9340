//! Configuration: compiled-in defaults (`config.default.toml`), overridden by an optional
//! TOML file, then by `HOOKD_*` environment variables, then by command-line flags.
//!
//! Every option must exist in the defaults file, so that file is the complete, commented
//! reference. A key unknown to it, in the file or as a `HOOKD_*` variable, is an error at
//! start (a typo must not silently leave the default in force), and so is a value of the
//! wrong type or out of range.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use toml::{Table, Value};

use crate::delivery::sender::SignatureHeaders;
use crate::delivery::ssrf::parse_networks;
use crate::domain::health::{AutoDisable, HealthSettings};
use crate::domain::{RetryPolicy, RetryPolicySpec};
use crate::signing::at_rest::{Keyring, parse_main_key};
use crate::telemetry::otlp::{self, TraceSettings};

pub const DEFAULT_TOML: &str = include_str!("../../config.default.toml");

/// The longest retention an option may set: a hundred years.
const MAX_RETENTION_DAYS: u32 = 36_500;

/// The most `max_request_timeout_secs` may be: an hour.
const MAX_REQUEST_TIMEOUT_SECS: u64 = 3600;

/// The longest window of attempts health is judged over.
const MAX_HEALTH_WINDOW: usize = 10_000;

/// Environment variables with the `HOOKD_` prefix that are not configuration options.
/// (`HOOKD_URL` and `HOOKD_TOKEN` are `hookd apply`'s.)
const NOT_OPTIONS: &[&str] = &[
    "HOOKD_CONFIG",
    "HOOKD_URL",
    "HOOKD_TOKEN",
    "HOOKD_SECRETS_DIR",
];

/// The options whose values are secrets. Each may also be given in a file (see
/// [`secret_from_file`]), and none is ever logged.
pub const SECRET_OPTIONS: &[&str] = &[
    "admin_token",
    "database_url",
    "main_key",
    "metrics_token",
    "otlp_headers",
    "previous_main_keys",
];

/// Where Docker (and Compose, and Swarm) mount secrets; `HOOKD_SECRETS_DIR` changes it.
const DOCKER_SECRETS_DIR: &str = "/run/secrets";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("unknown option `{key}` in {origin} (see config.default.toml for the options)")]
    UnknownKey { key: String, origin: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub admin_token: String,
    /// Requests per hour for each stored API token without its own limit; 0: none.
    pub token_rate_limit: u32,
    /// Where people reach hookd, for links it hands out; empty: from the request's Host.
    pub public_url: String,
    /// Base64 of 32 bytes, or empty; read through [`Config::keyring`].
    pub main_key: String,
    pub previous_main_keys: Vec<String>,
    pub max_payload_bytes: usize,
    pub max_payload_depth: usize,
    pub header_read_timeout_secs: u64,
    pub body_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub api_request_timeout_secs: u64,
    pub max_pending_messages: usize,
    pub max_batch_bytes: usize,
    pub validate_payloads: bool,
    pub max_connections: usize,
    pub reserved_connections: usize,
    pub idempotency_ttl_hours: u32,
    pub deliver_at_horizon_days: u32,
    pub sqlite_read_connections: u32,
    pub database_pool_min: u32,
    pub database_pool_max: u32,
    pub role: Role,
    /// `production` turns on `https_only` and refuses unsafe settings (see [`Mode`]).
    pub mode: Mode,
    pub log_level: String,
    pub log_format: LogFormat,
    pub shutdown_timeout_secs: u64,
    pub node_heartbeat_secs: u64,
    pub node_dead_after_secs: u64,
    pub retry_schedule: Vec<u64>,
    pub retry_jitter: f64,
    pub request_timeout_secs: u64,
    pub max_request_timeout_secs: u64,
    pub retry_policy_high: String,
    pub retry_policy_normal: String,
    pub retry_policy_low: String,
    pub max_response_body_bytes: usize,
    pub signature_headers: SignatureHeaders,
    pub allowed_networks: Vec<String>,
    pub https_only: bool,
    pub delivery_concurrency: usize,
    pub endpoint_concurrency: usize,
    pub payload_retention_days: u32,
    pub retention_days: u32,
    pub metrics_listen: String,
    pub metrics_token: String,
    pub ready_max_lag_secs: u64,
    pub health_window: usize,
    pub degraded_below: f64,
    pub failing_alert_at: Vec<u32>,
    pub auto_disable_after_failures: u32,
    pub auto_disable_after_secs: u64,
    pub otlp_endpoint: String,
    pub otlp_headers: String,
    pub otlp_service_name: String,
    pub otlp_sample_ratio: f64,
    /// `hookd serve --apply FILE`: the declarative file applied at start, on SIGHUP and on
    /// `POST /api/v1/hookd/reload`. A command-line flag only, not an option of the file.
    #[serde(skip)]
    pub apply_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The preset a node runs under. `production` turns `https_only` on and refuses to start
/// without a main key (`main_key`), with an admin token that is the README's `change-me` or
/// shorter than 24 characters, or with an `allowed_networks` entry wider than a /8 (IPv4) or
/// /7 (IPv6, as wide as fc00::/7): each private network deliveries may reach must be listed on its own, never
/// opened by a catch-all such as `0.0.0.0/0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The default: zero setup (no main key, any token, http:// allowed).
    Development,
    Production,
}

/// Admin tokens a production node refuses: shorter, or this (the README's example).
const MIN_PRODUCTION_TOKEN: usize = 24;
const EXAMPLE_TOKEN: &str = "change-me";

/// What a node does: serve the API, deliver, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves the API and does not deliver.
    Api,
    /// Delivers, and serves only the health routes.
    Worker,
    /// Both.
    All,
}

impl Role {
    pub fn serves_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }

    pub fn delivers(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Worker => "worker",
            Role::All => "all",
        }
    }
}

/// Where the data lives, from `database_url` and `data_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    SqliteFile(PathBuf),
    SqliteUrl(String),
    /// A `postgres://` (or `postgresql://`) URL.
    Postgres(String),
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the admin token.
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "admin_token",
                &(!self.admin_token.is_empty()).then_some("<set>"),
            )
            .field(
                "main_key",
                &(!self.main_key.trim().is_empty()).then_some("<set>"),
            )
            .field("previous_main_keys", &self.previous_main_keys.len())
            .field("database_pool_min", &self.database_pool_min)
            .field("database_pool_max", &self.database_pool_max)
            .field("role", &self.role)
            .field("mode", &self.mode)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("max_connections", &self.max_connections)
            .field("log_level", &self.log_level)
            .field("payload_retention_days", &self.payload_retention_days)
            .field("retention_days", &self.retention_days)
            .field("metrics_listen", &self.metrics_listen)
            .field(
                "metrics_token",
                &(!self.metrics_token.is_empty()).then_some("<set>"),
            )
            .field("ready_max_lag_secs", &self.ready_max_lag_secs)
            .field("otlp_endpoint", &redact_url(&self.otlp_endpoint))
            .field(
                "otlp_headers",
                &(!self.otlp_headers.trim().is_empty()).then_some("<set>"),
            )
            .field("otlp_sample_ratio", &self.otlp_sample_ratio)
            .field("apply_file", &self.apply_file)
            .finish_non_exhaustive()
    }
}

/// The URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Overrides given on the command line; `None` leaves the option as configured.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub role: Option<Role>,
    pub apply_file: Option<PathBuf>,
}

impl Config {
    /// The defaults alone, with no file or environment.
    pub fn defaults() -> Self {
        Self::load(None, std::iter::empty(), &Overrides::default())
            .expect("config.default.toml must be valid")
    }

    /// Builds the configuration from the defaults, `file`, the `HOOKD_*` variables among
    /// `env`, and `overrides`, and checks it.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let defaults: Table = DEFAULT_TOML
            .parse()
            .expect("config.default.toml must parse");
        let mut merged = defaults.clone();
        if let Some(path) = file {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let table: Table = text.parse().map_err(|source| ConfigError::Parse {
                path: path.to_owned(),
                source,
            })?;
            for (key, value) in table {
                if !defaults.contains_key(&key) {
                    return Err(ConfigError::UnknownKey { key, origin });
                }
                merged.insert(key, value);
            }
        }
        for (name, raw) in &env {
            let Some(option) = name.strip_prefix("HOOKD_") else {
                continue;
            };
            if NOT_OPTIONS.contains(&name.as_str()) || option.starts_with("TEST_") {
                continue;
            }
            let secret_file = option
                .strip_suffix("_FILE")
                .is_some_and(|o| SECRET_OPTIONS.contains(&o.to_ascii_lowercase().as_str()));
            if secret_file {
                continue;
            }
            let key = option.to_ascii_lowercase();
            let Some(default) = defaults.get(&key) else {
                return Err(ConfigError::UnknownKey {
                    key: name.clone(),
                    origin: "the environment".into(),
                });
            };
            let value = env_value(default, raw).map_err(|message| ConfigError::Invalid {
                origin: format!("environment variable {name}"),
                message,
            })?;
            merged.insert(key, value);
        }
        for option in SECRET_OPTIONS {
            if let Some(value) = secret_from_file(option, &env)? {
                // A list (previous_main_keys) holds one item per line or comma.
                let value = match defaults.get(*option) {
                    Some(Value::Array(_)) => Value::Array(
                        split_list(&value)
                            .map(|item| Value::String(item.to_owned()))
                            .collect(),
                    ),
                    _ => Value::String(value),
                };
                merged.insert((*option).to_owned(), value);
            }
        }
        if let Some(listen) = &overrides.listen {
            merged.insert("listen".into(), Value::String(listen.clone()));
        }
        if let Some(dir) = &overrides.data_dir {
            merged.insert("data_dir".into(), Value::String(dir.display().to_string()));
        }
        if let Some(role) = overrides.role {
            merged.insert("role".into(), Value::String(role.as_str().into()));
        }
        let mut config =
            Config::deserialize(Value::Table(merged)).map_err(|e| ConfigError::Invalid {
                origin: "configuration".into(),
                message: e.message().to_owned(),
            })?;
        config.apply_file = overrides.apply_file.clone();
        if config.mode == Mode::Production {
            config.https_only = true;
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            origin: format!("option `{key}`"),
            message: message.to_owned(),
        };
        if self.max_payload_bytes == 0 {
            return Err(invalid("max_payload_bytes", "must be greater than 0"));
        }
        let public_url = self.public_url.trim();
        if !public_url.is_empty()
            && !url::Url::parse(public_url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        {
            return Err(invalid(
                "public_url",
                "must be an http:// or https:// URL, e.g. \"https://hooks.example.com\"",
            ));
        }
        if self.max_payload_depth == 0 {
            return Err(invalid("max_payload_depth", "must be at least 1"));
        }
        for (key, secs) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
        ] {
            if secs == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        if self.api_request_timeout_secs <= self.body_read_timeout_secs {
            return Err(invalid(
                "api_request_timeout_secs",
                "must be greater than body_read_timeout_secs (it counts the body's arrival too)",
            ));
        }
        if self.max_pending_messages == 0 {
            return Err(invalid("max_pending_messages", "must be at least 1"));
        }
        if self.max_batch_bytes < self.max_payload_bytes {
            return Err(invalid(
                "max_batch_bytes",
                "must be at least max_payload_bytes (a batch holds at least one message)",
            ));
        }
        if self.deliver_at_horizon_days == 0 {
            return Err(invalid("deliver_at_horizon_days", "must be at least 1"));
        }
        if self.sqlite_read_connections == 0 {
            return Err(invalid("sqlite_read_connections", "must be at least 1"));
        }
        if self.database_pool_max < 3 {
            return Err(invalid(
                "database_pool_max",
                "must be at least 3 (one connection writes the batches of messages and \
                 attempts, one listens for other nodes' notifications, one serves the rest)",
            ));
        }
        if self.database_pool_min > self.database_pool_max {
            return Err(invalid(
                "database_pool_min",
                "must not be larger than database_pool_max",
            ));
        }
        if !(0.0..1.0).contains(&self.retry_jitter) {
            return Err(invalid("retry_jitter", "must be at least 0 and below 1"));
        }
        if !(1..=MAX_REQUEST_TIMEOUT_SECS).contains(&self.max_request_timeout_secs) {
            return Err(invalid(
                "max_request_timeout_secs",
                "must be from 1 to 3600",
            ));
        }
        if self.request_timeout_secs == 0 {
            return Err(invalid("request_timeout_secs", "must be at least 1"));
        }
        if self.node_heartbeat_secs == 0 {
            return Err(invalid("node_heartbeat_secs", "must be at least 1"));
        }
        if self.node_dead_after_secs < self.node_heartbeat_secs.saturating_mul(3) {
            return Err(invalid(
                "node_dead_after_secs",
                "must be at least 3 times node_heartbeat_secs, so that a node missing two \
                 heartbeats in a row is not taken for dead",
            ));
        }
        if self.request_timeout_secs > self.max_request_timeout_secs {
            return Err(invalid(
                "request_timeout_secs",
                "must not be more than max_request_timeout_secs",
            ));
        }
        self.priority_policies()?;
        if self.delivery_concurrency == 0 || self.endpoint_concurrency == 0 {
            return Err(invalid(
                "delivery_concurrency",
                "concurrency limits must be at least 1",
            ));
        }
        for (key, days) in [
            ("payload_retention_days", self.payload_retention_days),
            ("retention_days", self.retention_days),
        ] {
            if days > MAX_RETENTION_DAYS {
                return Err(invalid(key, "must be at most 36500 (0 turns it off)"));
            }
        }
        if !(1..=MAX_HEALTH_WINDOW).contains(&self.health_window) {
            return Err(invalid("health_window", "must be from 1 to 10000"));
        }
        if !(0.0..=1.0).contains(&self.degraded_below) {
            return Err(invalid("degraded_below", "must be from 0 to 1"));
        }
        let alerts = &self.failing_alert_at;
        if alerts.is_empty() || alerts[0] == 0 || alerts.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(
                "failing_alert_at",
                "must list at least one streak length, each at least 1, in ascending order",
            ));
        }
        parse_networks(&self.allowed_networks).map_err(|e| invalid("allowed_networks", &e))?;
        self.metrics_address()
            .map_err(|e| invalid("metrics_listen", &e))?;
        self.traces()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(invalid(
                "log_level",
                "is not a valid log filter (try \"info\")",
            ));
        }
        self.keyring()?;
        if self.mode == Mode::Production {
            self.check_production()?;
        }
        let database = self.database()?;
        if self.role != Role::All && !matches!(database, Database::Postgres(_)) {
            return Err(invalid(
                "role",
                "api and worker roles split one service across nodes, which share a \
                 PostgreSQL database: set database_url to a postgres:// URL, or use role \"all\"",
            ));
        }
        Ok(())
    }

    /// What `mode = "production"` refuses (see [`Mode`]); errors name the option, never a
    /// value.
    fn check_production(&self) -> Result<(), ConfigError> {
        let refused = |key: &str, why: &str| ConfigError::Invalid {
            origin: format!("option `{key}`"),
            message: format!("{why} (mode = \"production\")"),
        };
        if self.main_key.trim().is_empty() {
            return Err(refused(
                "main_key",
                "must be set: secrets are not stored unencrypted in production; make one with \
                 `hookd main-key generate`",
            ));
        }
        let token = self.admin_token.trim();
        if !token.is_empty() && (token == EXAMPLE_TOKEN || token.len() < MIN_PRODUCTION_TOKEN) {
            return Err(refused(
                "admin_token",
                "is the example token or shorter than 24 characters; create a token with \
                 `hookd token create`, or set a long random one",
            ));
        }
        for network in parse_networks(&self.allowed_networks).unwrap_or_default() {
            let widest = if network.addr().is_ipv4() { 8 } else { 7 };
            if network.prefix_len() < widest {
                return Err(refused(
                    "allowed_networks",
                    &format!(
                        "{network} opens more than one private network at once; list each \
                         network deliveries may reach (at most a /{widest})"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The main keys credentials are sealed with at rest (`main_key`, `previous_main_keys`):
    /// no current key when `main_key` is empty. Errors name the option, never the value.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: format!("option `{key}`"),
            message,
        };
        let current = match self.main_key.trim() {
            "" => None,
            text => Some(parse_main_key(text).map_err(|e| invalid("main_key", e))?),
        };
        let mut previous = Vec::new();
        for (n, text) in self
            .previous_main_keys
            .iter()
            .flat_map(|item| split_list(item))
            .enumerate()
        {
            let key = parse_main_key(text)
                .map_err(|e| invalid("previous_main_keys", format!("item {}: {e}", n + 1)))?;
            previous.push(key);
        }
        if current.is_none() && !previous.is_empty() {
            return Err(invalid(
                "previous_main_keys",
                "needs main_key: previous keys are only read while values are re-encrypted \
                 under the current one"
                    .into(),
            ));
        }
        Ok(Keyring::new(current.as_ref(), &previous))
    }

    /// Where `GET /metrics` is served apart from the API: `None` (the default) serves it on
    /// the API's listener.
    pub fn metrics_address(&self) -> Result<Option<SocketAddr>, String> {
        let text = self.metrics_listen.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| format!("{text:?} is not an address and port such as \"127.0.0.1:9071\""))
    }

    /// Where and how spans are exported; `None` when `otlp_endpoint` is empty (off).
    pub fn traces(&self) -> Result<Option<TraceSettings>, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: format!("option `{key}`"),
            message,
        };
        if !(0.0..=1.0).contains(&self.otlp_sample_ratio) {
            return Err(invalid("otlp_sample_ratio", "must be from 0 to 1".into()));
        }
        let headers =
            otlp::parse_headers(&self.otlp_headers).map_err(|e| invalid("otlp_headers", e))?;
        let endpoint = self.otlp_endpoint.trim();
        if endpoint.is_empty() {
            return Ok(None);
        }
        let url = otlp::traces_url(endpoint).map_err(|e| invalid("otlp_endpoint", e))?;
        let service_name = self.otlp_service_name.trim();
        if service_name.is_empty() {
            return Err(invalid(
                "otlp_service_name",
                "must not be empty (traces are exported under it)".into(),
            ));
        }
        Ok(Some(TraceSettings {
            url,
            headers,
            service_name: service_name.to_owned(),
            sample_ratio: self.otlp_sample_ratio,
        }))
    }

    /// The global default retry policy: `retry_schedule`, `retry_jitter`,
    /// `request_timeout_secs`, every failure retried, a fixed timeout.
    pub fn default_retry_policy(&self) -> RetryPolicy {
        RetryPolicy::complete(
            self.retry_schedule
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            self.retry_jitter,
            Duration::from_secs(self.request_timeout_secs),
        )
    }

    /// `max_request_timeout_secs`: no attempt may take longer.
    pub fn max_request_timeout(&self) -> Duration {
        Duration::from_secs(self.max_request_timeout_secs)
    }

    /// The policies of `retry_policy_high`, `retry_policy_normal` and `retry_policy_low`
    /// (JSON, the API's shape; empty: none, the global default applies).
    pub fn priority_policies(&self) -> Result<[Option<RetryPolicy>; 3], ConfigError> {
        let parse = |key: &str, text: &str| -> Result<Option<RetryPolicy>, ConfigError> {
            if text.trim().is_empty() {
                return Ok(None);
            }
            let invalid = |message: String| ConfigError::Invalid {
                origin: format!("option `{key}`"),
                message,
            };
            let spec: RetryPolicySpec = serde_json::from_str(text)
                .map_err(|e| invalid(format!("is not a retry policy: {e}")))?;
            RetryPolicy::parse(&spec, self.max_request_timeout())
                .map(Some)
                .map_err(|e| invalid(format!("{}: {}", e.field.join("."), e.message)))
        };
        Ok([
            parse("retry_policy_high", &self.retry_policy_high)?,
            parse("retry_policy_normal", &self.retry_policy_normal)?,
            parse("retry_policy_low", &self.retry_policy_low)?,
        ])
    }

    /// The endpoint health options, as the delivery path applies them.
    pub fn health(&self) -> HealthSettings {
        HealthSettings {
            window: self.health_window,
            degraded_below: self.degraded_below,
            failing_alert_at: self.failing_alert_at.clone(),
            auto_disable: AutoDisable {
                after_failures: self.auto_disable_after_failures,
                after_secs: self.auto_disable_after_secs,
            },
        }
    }

    /// `ready_max_lag_secs`, unless it is 0 (off).
    pub fn ready_max_lag(&self) -> Option<u64> {
        (self.ready_max_lag_secs > 0).then_some(self.ready_max_lag_secs)
    }

    pub fn database(&self) -> Result<Database, ConfigError> {
        let url = self.database_url.trim();
        if url.is_empty() {
            return Ok(Database::SqliteFile(self.data_dir.join("hookd.db")));
        }
        if url.starts_with("sqlite:") {
            return Ok(Database::SqliteUrl(url.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_owned()));
        }
        Err(ConfigError::Invalid {
            origin: "option `database_url`".into(),
            message: format!(
                "{:?} is not supported: use a postgres:// or sqlite:// URL, or leave it empty \
                 for the default file in data_dir",
                redact_url(url)
            ),
        })
    }
}

/// Parses an environment variable's text as the type of the option's default.
/// A secret option's value from a file, which wins over the environment and the config
/// file: `HOOKD_<OPTION>_FILE` names the file; without it, Docker's
/// `/run/secrets/hookd_<option>` is read if it exists. The file's text is the value, less
/// one trailing line break. An unreadable or empty file stops hookd with an error naming
/// the file (never its content).
fn secret_from_file(option: &str, env: &[(String, String)]) -> Result<Option<String>, ConfigError> {
    let lookup = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let variable = format!("HOOKD_{}_FILE", option.to_ascii_uppercase());
    let (path, origin) = match lookup(&variable) {
        Some(path) => (
            PathBuf::from(path),
            format!("environment variable {variable}"),
        ),
        None => {
            let dir = lookup("HOOKD_SECRETS_DIR").unwrap_or(DOCKER_SECRETS_DIR);
            let path = Path::new(dir).join(format!("hookd_{option}"));
            if !path.exists() {
                return Ok(None);
            }
            let origin = format!("secret file {}", path.display());
            (path, origin)
        }
    };
    let invalid = |message: String| ConfigError::Invalid {
        origin: origin.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let value = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err(invalid(format!(
            "{} is empty; it must hold the value of `{option}`",
            path.display()
        )));
    }
    Ok(Some(value.to_owned()))
}

/// The items of a list given as one text: separated by commas, spaces or line breaks.
fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

fn env_value(default: &Value, raw: &str) -> Result<Value, String> {
    Ok(match default {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Integer(_) => Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("{raw:?} is not an integer"))?,
        ),
        Value::Float(_) => Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| format!("{raw:?} is not a number"))?,
        ),
        Value::Boolean(_) => Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(format!("{raw:?} is not a boolean (true or false)")),
        }),
        Value::Array(items) => {
            let element = items
                .first()
                .cloned()
                .unwrap_or(Value::String(String::new()));
            let parts = raw.split(',').map(str::trim).filter(|s| !s.is_empty());
            Value::Array(
                parts
                    .map(|p| env_value(&element, p))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Datetime(_) | Value::Table(_) => {
            return Err("cannot be set from the environment".to_owned());
        }
    })
}

#[cfg(test)]
mod tests;
