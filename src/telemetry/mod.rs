//! Logs and traces. Logs: `tracing` to stderr, as text or JSON, filtered by `log_level`.
//! Traces: OpenTelemetry spans of messages and attempts, exported over OTLP/HTTP when
//! `otlp_endpoint` is set ([`traces`] makes them, [`otlp`] sends them).

pub mod otlp;
pub mod traces;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber; later calls (in tests) leave the first one in place.
pub fn init(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
