//! Endpoints as code: a declarative file (YAML, TOML or JSON) of event types, applications
//! with their endpoints, and operational webhook endpoints, applied through hookd's HTTP API
//! by `hookd apply` and by `hookd serve --apply` (at start, on SIGHUP and on
//! `POST /api/v1/hookd/reload`).
//!
//! The file is read whole and checked before anything is written: every error is reported
//! with its line ([`load`]). Then the current state is read, compared ([`plan::plan`]) and
//! the differences applied in order ([`plan::execute`]). Objects are identified by their
//! uid (event types by name), so applying twice changes nothing the second time. If the API
//! refuses a change part way (say, a uid taken by an object outside the file), what was
//! applied before stays applied and the error says where it stopped; since apply is
//! idempotent, running it again once the cause is fixed converges.

mod client;
mod endpoints;
mod fields;
pub mod node;
pub mod plan;
mod reload;
pub mod spec;
mod spec_endpoints;

use std::path::Path;

pub use client::{Client, RemoteError};
pub use fields::{FileError, SecretSource};
pub use plan::{Action, Change, Plan, Stopped};
pub use reload::Reloader;
pub use spec::Desired;

/// Reads and checks `path` (format by extension), resolving secret references against the
/// process environment and the file's directory.
pub fn load(path: &Path, https_only: bool) -> Result<Desired, Vec<FileError>> {
    let whole = |message: String| {
        vec![FileError {
            line: 0,
            path: String::new(),
            message: format!("{}: {message}", path.display()),
        }]
    };
    let Some(format) = node::Format::of(path) else {
        return Err(whole(
            "unknown format; name the file .yaml, .yml, .toml or .json".into(),
        ));
    };
    let text = std::fs::read_to_string(path).map_err(|e| whole(format!("cannot read: {e}")))?;
    let env = |name: &str| std::env::var(name).ok();
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let source = SecretSource {
        env: &env,
        base_dir,
    };
    parse(&text, format, https_only, &source)
}

/// Checks a file's text.
pub fn parse(
    text: &str,
    format: node::Format,
    https_only: bool,
    source: &SecretSource<'_>,
) -> Result<Desired, Vec<FileError>> {
    let root = node::parse(text, format).map_err(|e| {
        vec![FileError {
            line: e.line,
            path: String::new(),
            message: e.message,
        }]
    })?;
    spec::read(&root, https_only, source).map_err(|e| e.0)
}

/// The plan as lines: one per change, then a count of what is unchanged.
pub fn render(plan: &Plan, dry_run: bool) -> String {
    let mut out = String::new();
    for change in &plan.changes {
        out.push_str(&change.to_string());
        out.push('\n');
    }
    let n = plan.changes.len();
    let summary = match (n, dry_run) {
        (0, _) => format!("no changes: {} objects already as declared", plan.unchanged),
        (n, true) => format!(
            "dry run: {n} changes would be made, nothing changed; {} objects already as declared",
            plan.unchanged
        ),
        (n, false) => format!(
            "{n} changes applied; {} objects already as declared",
            plan.unchanged
        ),
    };
    out.push_str(&summary);
    out
}

/// Why an apply did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the file is invalid, nothing was applied:\n{}", render_errors(.0))]
    Invalid(Vec<FileError>),
    #[error("cannot read hookd's current state, nothing was applied: {0}")]
    Read(#[from] RemoteError),
    #[error("{0} (apply is idempotent: fix the cause and run it again)")]
    Stopped(#[from] Stopped),
}

pub fn render_errors(errors: &[FileError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Plans the changes and, unless `dry_run`, makes them.
pub async fn apply(
    client: &Client,
    desired: &Desired,
    dry_run: bool,
    prune: bool,
) -> Result<Plan, ApplyError> {
    apply_reporting(client, desired, dry_run, prune, &mut |_, _| {}).await
}

/// [`apply`], telling `on_change` how many of how many changes are made before each one and
/// once at the end (for a progress line).
pub async fn apply_reporting(
    client: &Client,
    desired: &Desired,
    dry_run: bool,
    prune: bool,
    on_change: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<Plan, ApplyError> {
    let plan = plan::plan(client, desired, prune).await?;
    if !dry_run {
        plan::execute(client, &plan, on_change).await?;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests;
