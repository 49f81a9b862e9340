//! hookd: a webhook delivery service with a Svix-compatible API.
//!
//! # Layout
//!
//! | module      | owns                                                                 | may use |
//! | ----------- | -------------------------------------------------------------------- | ------- |
//! | [`domain`]  | ids, names, Application, Endpoint, Message, EventType, signing secrets, retry policies | nothing else in the crate |
//! | [`signing`] | Standard Webhooks signatures: signing deliveries, verifying them; checking what ingest sources receive (Stripe, GitHub, Shopify, Slack, HMAC, basic/bearer); the main-key envelope of secrets at rest | `domain` |
//! | [`store`]   | SQLite and PostgreSQL, migrations, the delivery queue (with `throttleRate`'s token buckets, taken from by claims), retention; each query written once for both | `domain` |
//! | [`delivery`] | dispatcher, HTTP sender, outcome classification, which retry policy applies to an attempt, SSRF guard | `domain`, `signing`, `store`, `telemetry::traces` (the tracer handle) |
//! | [`retention`] | the payload expiry and message pruning jobs                        | `domain`, `store`, `delivery::clock` |
//! | [`events`]  | operational webhooks: the internal application their endpoints live in, and the job that drains the `operational_event` outbox into its messages | `domain`, `store` |
//! | [`ingest`]  | ingest sources' cron runner (what they receive comes in through `api`, verified by `signing::verify_inbound`) | `domain`, `store` |
//! | [`monitors`] | freshness monitors: the checker that marks them stale or ok | `domain`, `store` |
//! | [`entities`] | change detection: the snapshot writer (group commit), and the job that drains the `entity_event` outbox (rules fired by entity snapshots) into messages of their applications | `domain`, `store`, `events` (its settings) |
//! | [`tasks`]   | background tasks (purging an application's payloads, replays), run in steps under a lease | `domain`, `store`, `delivery::clock`, `retention`, `replay` |
//! | [`replay`]  | replays, recoveries and dead-letter requeues: the steps of their tasks and their cursors | `domain`, `store`, `retention` (batch size), `tasks` (initial data) |
//! | [`api`]     | axum routers, DTOs, auth, pagination, idempotency, error mapping, OpenAPI | `domain`, `store`, `events`, `entities` (the snapshot writer), `telemetry::traces` (the tracer handle), `declare::node` (YAML text of an OpenAPI import) |
//! | [`ui`]      | the admin UI and customer portal at `/ui`: a single-page app in plain JavaScript, embedded, that works through the JSON API | nothing (static files) |
//! | [`declare`] | endpoints as code: the declarative file (YAML, TOML, JSON), checked with line numbers, and applied through the HTTP API (`hookd apply`, `serve --apply`) | `domain`, `api` (the reload hook) |
//! | [`nodes`]   | heartbeats of the nodes sharing a PostgreSQL database; giving back a dead node's claims | `domain`, `store`, `delivery::clock` |
//! | [`config`], [`app`], [`server`], [`cli`], [`main_key`], [`telemetry`], [`metrics`] | wiring: configuration, startup and shutdown, the main key of secrets at rest (start-up check, rotation), accepting connections (caps, timeouts), the command line, logs and OpenTelemetry traces (OTLP export), Prometheus metrics | everything |
//!
//! Signing secrets live in `domain` (endpoints own them and the store persists them); the
//! signing and delivery modules build on them. The store seals endpoint secrets and headers
//! at rest through `domain::sealed::SecretsAtRest`, which `signing::at_rest` implements with
//! the main key (wired by `app`), so the store still uses `domain` alone.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod declare;
pub mod delivery;
pub mod domain;
pub mod entities;
pub mod events;
pub mod ingest;
pub mod main_key;
pub mod metrics;
pub mod monitors;
pub mod nodes;
pub mod outbox;
pub mod replay;
pub mod retention;
pub mod server;
pub mod signing;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod ui;
