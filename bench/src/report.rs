//! What a scenario run measured, as JSON and as a Markdown table.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From latencies in µs; sorts them.
    pub fn of(mut micros: Vec<u64>) -> Self {
        if micros.is_empty() {
            return Self::default();
        }
        micros.sort_unstable();
        let at = |q: f64| {
            let i = ((micros.len() as f64 - 1.0) * q).round() as usize;
            micros[i] as f64 / 1000.0
        };
        Self {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        }
    }
}

/// A figure a scenario measures besides the common columns (a listing's p99, the bytes on
/// disk per message, a drain rate).
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

impl Figure {
    pub fn new(name: &str, value: f64, unit: &str) -> Self {
        Self {
            name: name.into(),
            value,
            unit: unit.into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Run {
    pub scenario: String,
    pub description: String,
    pub backend: String,
    /// Messages per second offered (open loop), or null for closed loop.
    pub offered_per_s: Option<f64>,
    pub sent: u64,
    pub accepted: u64,
    pub ingest_errors: u64,
    pub first_ingest_error: Option<String>,
    pub accepted_per_s: f64,
    /// Deliveries expected (accepted × endpoints per message).
    pub deliveries_expected: u64,
    pub delivered: u64,
    pub delivered_per_s: f64,
    pub first_attempts_per_s: f64,
    pub latency: Latency,
    /// For (d): the healthy endpoints only.
    pub healthy_latency: Option<Latency>,
    pub missing_after_drain: u64,
    pub duplicates: u64,
    pub hookd_cpu_s: Option<f64>,
    /// On PostgreSQL, the CPU time of the local server's processes during the run (s), or
    /// `None` when no local server was found.
    pub database_cpu_s: Option<f64>,
    pub hookd_idle_rss_mib: Option<f64>,
    pub hookd_peak_rss_mib: Option<f64>,
    /// Open loop: the worst ingest→receipt latency of the messages sent in each second (ms).
    pub worst_ms_by_second: Vec<f64>,
    /// From sending each request to its answer (the 202), as a client sees it.
    pub ingest_latency: Option<Latency>,
    /// Open loop: the worst ingest latency of the requests sent in each second (ms).
    pub ingest_worst_ms_by_second: Vec<f64>,
    /// CPU time the hypervisor took from this machine during the run (s): a tail that lines
    /// up with steal is the host's, not hookd's.
    pub machine_steal_s: Option<f64>,
    /// RSS sampled every second during the load (MiB).
    pub hookd_rss_samples_mib: Vec<f64>,
    pub driver_cpu_s: f64,
    pub receiver_cpu_s: f64,
    pub wall_s: f64,
    /// The scenario's own figures, in the order measured.
    pub figures: Vec<Figure>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

pub fn markdown(runs: &[Run]) -> String {
    let mut out = String::from(
        "| scenario | backend | offered/s | accepted/s | delivered/s | p50 ms | p90 ms | p99 ms | max ms | ingest p99 ms | missing | dups | hookd CPU s | db CPU s | idle RSS MiB | peak RSS MiB | driver CPU s | receiver CPU s | steal s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    // Runs that sent nothing (listings on a grown store) have only their figures.
    for r in runs.iter().filter(|r| r.sent > 0 || r.figures.is_empty()) {
        let lat = r.healthy_latency.as_ref().unwrap_or(&r.latency);
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {} |\n",
            r.scenario,
            r.backend,
            opt(r.offered_per_s, 0),
            r.accepted_per_s,
            r.delivered_per_s,
            lat.p50_ms,
            lat.p90_ms,
            lat.p99_ms,
            lat.max_ms,
            opt(r.ingest_latency.as_ref().map(|l| l.p99_ms), 1),
            r.missing_after_drain,
            r.duplicates,
            opt(r.hookd_cpu_s, 1),
            opt(r.database_cpu_s, 1),
            opt(r.hookd_idle_rss_mib, 1),
            opt(r.hookd_peak_rss_mib, 1),
            r.driver_cpu_s,
            r.receiver_cpu_s,
            opt(r.machine_steal_s, 1),
        ));
    }
    if runs.iter().any(|r| !r.figures.is_empty()) {
        out.push_str("\n| scenario | backend | figure | value | unit |\n|---|---|---|---|---|\n");
        for r in runs {
            for f in &r.figures {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    r.scenario,
                    r.backend,
                    f.name,
                    figure_value(f.value),
                    f.unit
                ));
            }
        }
    }
    out
}

/// Whole numbers as they are, others with the digits that matter.
fn figure_value(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_set() {
        let l = Latency::of((1..=100).map(|ms| ms * 1000).collect());
        assert_eq!(l.p50_ms, 51.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
    }
}
