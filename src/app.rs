//! Wiring: opens the store, binds the listener, runs the API and background tasks, and shuts
//! them down in order.
//!
//! The node's role decides what runs: `api` serves the API; `worker` runs the dispatcher
//! (and, on PostgreSQL, the LISTEN task that wakes it when another node makes deliveries due,
//! and the heartbeat that lets the nodes give back a dead one's claims) and serves only the
//! health routes; `all` does both. Every node runs the retention jobs,
//! background tasks and the operational events drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::TimeDelta;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, ApiSettings, ApiShared, ApiState, Authenticator};
use crate::config::{Config, Database};
use crate::delivery::clock::{Clock, SystemClock};
use crate::delivery::dispatcher::{DispatchSettings, Dispatcher};
use crate::delivery::measure::DeliveryMetrics;
use crate::delivery::policy::Policies;
use crate::delivery::sender::{Sender, SenderSettings};
use crate::delivery::ssrf::{AddressPolicy, parse_networks};
use crate::domain::sealed::SecretsAtRest;
use crate::domain::time::now;
use crate::metrics::Metrics;
use crate::nodes::{NodeSettings, NodeStatus};
use crate::retention::RetentionSettings;
use crate::server::{self, ConnectionLimits};
use crate::store::postgres::{PgStore, PoolSettings, listen_for_deliveries};
use crate::store::sqlite::{ClaimsAtOpen, SqliteStore};
use crate::store::{Store, StoreMetrics};
use crate::telemetry::otlp::{self, Exporter};
use crate::telemetry::traces::Tracer;

/// How often expired idempotency records are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Time given, beyond the attempts' own grace period, to release claims and close.
const STOP_MARGIN: Duration = Duration::from_secs(10);
/// A claim outlives the request timeout by this much before another dispatcher may take it.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
const CLAIM_BATCH: usize = 256;
/// Windows of `endpoint_concurrency` a fast endpoint's deliveries are claimed ahead: enough to
/// keep it busy between two claims under load (see the dispatcher's docs).
const CLAIM_AHEAD: usize = 4;
/// The same on PostgreSQL, where a claim is several statements and round trips whatever its
/// size: a claim takes the room freed since the last one, so a wider window makes fewer,
/// larger claims of an endpoint's backlog (a drain of 1 M went from about 7,000 to 9,400
/// deliveries/s, step 25 in `docs/performance.md`). On SQLite, where claims ride in the
/// writer's batches, eight cost (a) a tenth of its throughput, so it keeps four. The node's
/// own bound (`max_held`) is the same for both.
const CLAIM_AHEAD_POSTGRES: usize = 8;
/// How long a request waits for a PostgreSQL connection before it is answered 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// At shutdown, how long the spans still queued may take to be exported.
const TRACES_FLUSH: Duration = Duration::from_secs(5);
/// Connections the metrics listener serves at once: scrapers are few.
const METRICS_CONNECTIONS: usize = 16;

/// Opens (creating and migrating if needed) the configured store.
/// For commands run beside a serving hookd: on SQLite its claims are left alone.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open(config, StoreMetrics::noop(), ClaimsAtOpen::Keep)
        .await?
        .store)
}

/// The opened store, with the PostgreSQL pool when there is one (for LISTEN and closing).
struct Opened {
    store: Arc<dyn Store>,
    pg_pool: Option<sqlx::PgPool>,
}

async fn open(
    config: &Config,
    metrics: StoreMetrics,
    claims: ClaimsAtOpen,
) -> anyhow::Result<Opened> {
    let secrets: Arc<dyn SecretsAtRest> = Arc::new(config.keyring()?);
    let store = match config.database()? {
        Database::SqliteFile(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create data directory {}", dir.display()))?;
            }
            let reads = config.sqlite_read_connections;
            SqliteStore::open_path_measured(&path, reads, metrics.sqlite_writer, secrets, claims)
                .await?
        }
        Database::SqliteUrl(url) => {
            let reads = config.sqlite_read_connections;
            SqliteStore::open_url_measured(&url, reads, metrics.sqlite_writer, secrets, claims)
                .await?
        }
        Database::Postgres(url) => {
            let store = PgStore::connect_measured(
                &url,
                PoolSettings {
                    min_connections: config.database_pool_min,
                    max_connections: config.database_pool_max,
                    acquire_timeout: ACQUIRE_TIMEOUT,
                },
                metrics,
                secrets,
            )
            .await?;
            let pg_pool = Some(store.pool().clone());
            return Ok(Opened {
                store: Arc::new(store),
                pg_pool,
            });
        }
    };
    Ok(Opened {
        store: Arc::new(store),
        pg_pool: None,
    })
}

/// A running hookd: the API on `addr` and its background tasks.
pub struct Server {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served, when `metrics_listen` gives it a listener of its own.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    serving: JoinHandle<std::io::Result<()>>,
    tasks: TaskTracker,
    timeout: Duration,
    pg_pool: Option<sqlx::PgPool>,
    /// Exports spans, when traces are on; flushed last at shutdown.
    exporter: Option<Exporter>,
    reloader: Option<Arc<crate::declare::Reloader>>,
}

impl Server {
    /// Opens the store, binds `config.listen` (port 0 picks a free port) and starts serving
    /// and delivering.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Server::start`], with the dispatcher reading time from `clock`.
    pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let Opened { store, pg_pool } =
            open(&config, metrics.store(), ClaimsAtOpen::GiveBack).await?;
        if let Err(e) = crate::main_key::check_secrets(&*store, &config).await {
            if let Some(pool) = &pg_pool {
                pool.close().await;
            }
            return Err(e);
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let reloader = match &config.apply_file {
            None => None,
            Some(path) => {
                if !config.role.serves_api() {
                    anyhow::bail!("--apply needs a node that serves the API (role api or all)");
                }
                if config.admin_token.is_empty() {
                    anyhow::bail!(
                        "--apply applies the file through the API with the admin token: set admin_token"
                    );
                }
                Some(Arc::new(crate::declare::Reloader::new(
                    path.clone(),
                    config.https_only,
                    addr,
                    &config.admin_token,
                )?))
            }
        };
        let metrics_address = config
            .metrics_address()
            .map_err(|e| anyhow::anyhow!("metrics_listen: {e}"))?;
        let metrics_listener = match metrics_address {
            Some(at) => Some(
                TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen on {at} (metrics_listen)"))?,
            ),
            None => None,
        };
        let metrics_addr = metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(metrics.clone().upkeep(shutdown.clone()));
        let (traces, exporter) = match config.traces()? {
            Some(settings) => {
                tracing::info!(url = %settings.url, "exporting traces");
                let (tracer, exporter) = otlp::start(settings, metrics.traces())?;
                (tracer, Some(exporter))
            }
            None => (Tracer::off(), None),
        };

        let wake = Arc::new(Notify::new());
        // Maintenance runs on every node, whatever its role; on PostgreSQL the nodes take
        // turns (see `retention` and `tasks`).
        let task_created = Arc::new(Notify::new());
        tasks.spawn(crate::tasks::run(
            store.clone(),
            clock.clone(),
            task_created.clone(),
            wake.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(crate::retention::run(
            store.clone(),
            clock.clone(),
            RetentionSettings {
                messages: (config.retention_days > 0)
                    .then(|| TimeDelta::days(i64::from(config.retention_days))),
            },
            metrics.retention(),
            shutdown.clone(),
        ));
        // Notified by the endpoint routes after they write operational events.
        let events_written = Arc::new(Notify::new());
        tasks.spawn(crate::monitors::run(
            store.clone(),
            events_written.clone(),
            shutdown.clone(),
        ));
        let event_settings = crate::events::EventSettings {
            payload_retention: payload_retention(&config),
        };
        tasks.spawn(crate::ingest::run_cron(
            store.clone(),
            event_settings.payload_retention,
            wake.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(crate::outbox::run(
            crate::events::OperationalEvents(event_settings),
            store.clone(),
            events_written.clone(),
            wake.clone(),
            shutdown.clone(),
        ));
        // Notified by the snapshot route after a snapshot fired events.
        let entities_written = Arc::new(Notify::new());
        tasks.spawn(crate::outbox::run(
            crate::entities::EntityEvents(event_settings),
            store.clone(),
            entities_written.clone(),
            wake.clone(),
            shutdown.clone(),
        ));
        let (snapshots, snapshot_writer) =
            crate::entities::SnapshotWriter::new(store.clone(), shutdown.clone());
        tasks.spawn(snapshot_writer);
        let mut node = None;
        let dispatcher = if config.role.delivers() {
            let dispatcher = dispatcher(
                &config,
                store.clone(),
                clock.clone(),
                wake.clone(),
                metrics.delivery(),
                traces.clone(),
            )?;
            // The heartbeat goes on until the dispatcher has finished (running attempts
            // may take the shutdown grace period), then the node leaves the node table.
            let stopped = CancellationToken::new();
            let run = dispatcher.clone().run(shutdown.clone());
            tasks.spawn({
                let stopped = stopped.clone();
                async move {
                    run.await;
                    stopped.cancel();
                }
            });
            if let Some(id) = store.node_id() {
                let status = NodeStatus::new(id);
                tasks.spawn(crate::nodes::run(
                    store.clone(),
                    clock.clone(),
                    NodeSettings {
                        heartbeat: Duration::from_secs(config.node_heartbeat_secs),
                        dead_after: Duration::from_secs(config.node_dead_after_secs),
                        address: addr.to_string(),
                    },
                    metrics.nodes(),
                    status.clone(),
                    wake.clone(),
                    stopped,
                ));
                node = Some(status);
            }
            if let Some(pool) = &pg_pool {
                tasks.spawn(listen_for_deliveries(
                    pool.clone(),
                    wake.clone(),
                    shutdown.clone(),
                ));
            }
            Some(dispatcher)
        } else {
            None
        };
        let auth = Arc::new(Authenticator::new(
            Some(&config.admin_token),
            config.token_rate_limit,
        ));
        let state = ApiState::new(ApiShared {
            store: store.clone(),
            auth: auth.clone(),
            settings: Arc::new(ApiSettings {
                max_payload_bytes: config.max_payload_bytes,
                max_payload_depth: config.max_payload_depth,
                body_read_timeout: Duration::from_secs(config.body_read_timeout_secs),
                https_only: config.https_only,
                payload_retention: payload_retention(&config),
                ready_max_lag_secs: config.ready_max_lag(),
                deliver_at_horizon: chrono::TimeDelta::days(i64::from(
                    config.deliver_at_horizon_days,
                )),
                request_timeout: Duration::from_secs(config.api_request_timeout_secs),
                max_pending_messages: config.max_pending_messages,
                max_batch_bytes: config.max_batch_bytes,
                max_request_timeout: config.max_request_timeout(),
                public_url: Some(config.public_url.trim().trim_end_matches('/').to_owned())
                    .filter(|u| !u.is_empty()),
            }),
            message_permits: Arc::new(tokio::sync::Semaphore::new(config.max_pending_messages)),
            message_enqueued: wake,
            payload_schemas: Arc::new(crate::api::payload_schemas::PayloadSchemas::new(
                config.validate_payloads,
            )),
            dispatcher,
            node,
            task_created: task_created.clone(),
            events_written,
            entities_written,
            snapshots,
            clock: clock.clone(),
            metrics: metrics.api(),
            traces,
            reload: reloader.clone().map(|r| r as Arc<dyn crate::api::Reload>),
        });
        let scrape = crate::metrics::router(metrics, store.clone(), clock, &config.metrics_token);
        if config.role.serves_api() {
            let ttl = Duration::from_secs(u64::from(config.idempotency_ttl_hours) * 3600);
            tasks.spawn(prune_idempotency_keys(store.clone(), ttl, shutdown.clone()));
            tasks.spawn(auth.sync(store, shutdown.clone()));
        }

        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            max_connections: config.max_connections,
            reserved_connections: config.reserved_connections,
            max_body_bytes: api::body_limit(&state.settings),
        };
        let on_api = if let Some(listener) = metrics_listener {
            let limits = ConnectionLimits {
                max_connections: METRICS_CONNECTIONS,
                reserved_connections: 0,
                max_body_bytes: 0,
                ..limits.clone()
            };
            let router = api::standalone(scrape);
            tasks.spawn(server::serve(listener, router, limits, shutdown.clone()));
            None
        } else {
            Some(scrape)
        };
        let router = if config.role.serves_api() {
            api::router(state, on_api)
        } else {
            api::health_router(state, on_api)
        };
        let serving = tokio::spawn(server::serve(listener, router, limits, shutdown.clone()));
        tracing::info!(%addr, ?metrics_addr, role = config.role.as_str(), "hookd is listening");
        let server = Self {
            addr,
            metrics_addr,
            shutdown,
            serving,
            tasks,
            timeout: Duration::from_secs(config.shutdown_timeout_secs) + STOP_MARGIN,
            pg_pool,
            exporter,
            reloader,
        };
        // Applied once the API listens, through it; a file that does not apply stops hookd.
        // (A change refused part way is tried again a few times first: see `apply_at_start`.)
        if let Some(reloader) = &server.reloader {
            if let Err(e) = reloader.apply_at_start().await {
                let _ = server.stop().await;
                return Err(anyhow::anyhow!("--apply: {e}"));
            }
        }
        Ok(server)
    }

    /// Applies the `--apply` file again (SIGHUP); errors are logged and leave hookd as it
    /// was up to the change that failed.
    pub async fn reload(&self) {
        match &self.reloader {
            Some(reloader) => {
                let _ = reloader.apply().await;
            }
            None => tracing::info!("SIGHUP ignored: hookd was started without --apply"),
        }
    }

    /// Stops accepting requests, lets running ones finish within the shutdown timeout, and
    /// stops the background tasks.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.tasks.close();
        let drained = async {
            let served = self.serving.await;
            self.tasks.wait().await;
            served
        };
        let result = match tokio::time::timeout(self.timeout, drained).await {
            Ok(served) => served
                .context("the API server task failed")
                .and_then(|r| r.context("the API server failed")),
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "shutdown timed out; exiting with requests still running");
                Ok(())
            }
        };
        // Every span is made by now (the API and the dispatcher have stopped): send them.
        if let Some(exporter) = self.exporter {
            exporter.finish(TRACES_FLUSH).await;
        }
        if let Some(pool) = self.pg_pool {
            pool.close().await;
        }
        result
    }
}

/// How long payloads are kept when a message does not say (`payload_retention_days`).
fn payload_retention(config: &Config) -> Option<TimeDelta> {
    (config.payload_retention_days > 0)
        .then(|| TimeDelta::days(i64::from(config.payload_retention_days)))
}

fn dispatcher(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    metrics: DeliveryMetrics,
    traces: Tracer,
) -> anyhow::Result<Arc<Dispatcher>> {
    // Each attempt's timeout is its retry policy's; none exceeds this, which the claims'
    // lease is computed from.
    let timeout = config.max_request_timeout();
    let networks = parse_networks(&config.allowed_networks)
        .map_err(|e| anyhow::anyhow!("allowed_networks: {e}"))?;
    let sender = Sender::new(SenderSettings {
        timeout,
        max_response_body_bytes: config.max_response_body_bytes,
        signature_headers: config.signature_headers,
        https_only: config.https_only,
        addresses: Arc::new(AddressPolicy::new(networks)),
    });
    let policies = Policies::new(
        config.default_retry_policy(),
        config.priority_policies()?,
        timeout,
    );
    Ok(Dispatcher::new(
        store,
        sender,
        policies,
        clock,
        wake,
        DispatchSettings {
            max_in_flight: config.delivery_concurrency,
            per_endpoint: config.endpoint_concurrency,
            claim_ahead: match config.database() {
                Ok(Database::Postgres(_)) => CLAIM_AHEAD_POSTGRES,
                _ => CLAIM_AHEAD,
            },
            claim_batch: CLAIM_BATCH,
            lease: timeout + LEASE_MARGIN,
            attempt_timeout: timeout,
            shutdown_grace: Duration::from_secs(config.shutdown_timeout_secs),
            health: Arc::new(config.health()),
            traces,
        },
        metrics,
    ))
}

/// How long an expired API token stays listed before it is deleted.
const EXPIRED_TOKENS_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Deletes idempotency keys past their time and API tokens expired a day ago.
async fn prune_idempotency_keys(store: Arc<dyn Store>, ttl: Duration, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                let before = now() - ttl;
                match store.prune_idempotency_keys(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "pruned idempotency keys"),
                    Err(e) => tracing::warn!(error = %e, "pruning idempotency keys failed"),
                }
                // Expired tokens stay listed for a day, then go.
                match store.prune_expired_tokens(now() - EXPIRED_TOKENS_KEPT).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "pruned expired API tokens"),
                    Err(e) => tracing::warn!(error = %e, "pruning expired API tokens failed"),
                }
            }
        }
    }
}
