//! Integration tests: each test starts a real hookd (see [`helpers::TestApp`]) and drives
//! its HTTP API the way a Svix client would. They run on SQLite, or on PostgreSQL with
//! `HOOKD_TEST_BACKEND=postgres` (a fresh database per test).

mod applications;
mod auth;
mod batch_ingest;
mod connections;
mod declare;
mod delivery;
mod delivery_api;
mod dev_cli;
mod ed25519;
mod endpoint_headers;
mod endpoint_secrets;
mod endpoints;
mod environment;
mod errors;
mod event_type_import;
mod event_types;
mod fifo;
mod health;
mod helpers;
mod ingest;
mod isolation;
mod message_batches;
mod message_log;
mod messages;
mod metrics;
mod monitors;
mod nodes;
mod nulls;
mod operational;
mod overload;
mod overview;
mod pagination;
mod pagination_concurrent;
mod payload_validation;
mod persistence;
#[path = "../support/pg.rs"]
mod pg;
mod postgres;
mod public;
#[macro_use]
mod queue;
// After `queue`, whose `conformance!` they use.
mod entities;
mod idempotency;
mod receiver;
mod replay;
mod retention;
mod retries;
mod retry_policies;
mod routes;
mod scheduled;
mod schema;
mod secrets_at_rest;
mod shutdown;
mod signature_schemes;
mod ssrf;
mod store_errors;
mod throttle;
mod tokens;
mod traces;
mod trailing_slash;
mod ui;
mod wal_sync;
