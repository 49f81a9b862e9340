//! `hookd serve --apply FILE`: the file applied through the server's own API, over loopback
//! HTTP with the admin token, so that it takes exactly the path `hookd apply` takes.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::{ApplyError, Client, apply, load, render};
use crate::api::{Reload, ReloadError};

pub struct Reloader {
    path: PathBuf,
    https_only: bool,
    client: Client,
    /// One apply at a time: SIGHUP and the reload route may race.
    running: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Applies `path` through the API listening on `addr` (a wildcard address is reached on
    /// loopback).
    pub fn new(
        path: PathBuf,
        https_only: bool,
        addr: SocketAddr,
        token: &str,
    ) -> anyhow::Result<Self> {
        let mut target = addr;
        if target.ip().is_unspecified() {
            target.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        Ok(Self {
            path,
            https_only,
            client: Client::new(&format!("http://{target}"), token)?,
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// Reads, checks and applies the file; logs the outcome.
    pub async fn apply(&self) -> Result<super::Plan, ApplyError> {
        let _one = self.running.lock().await;
        let desired = load(&self.path, self.https_only).map_err(ApplyError::Invalid)?;
        let result = apply(&self.client, &desired, false, false).await;
        match &result {
            Ok(plan) => tracing::info!(
                file = %self.path.display(),
                changes = plan.changes.len(),
                "declarative file applied: {}",
                render(plan, false).replace('\n', "; ")
            ),
            Err(e) => {
                tracing::error!(file = %self.path.display(), "declarative file not applied: {e}")
            }
        }
        result
    }
}

impl Reloader {
    /// As [`Reloader::apply`], for the start: a change refused part way is tried again, a
    /// few times, since on several nodes started at once with the same file another node
    /// may create an object between this one's reading and writing (a 409 here); the rerun
    /// finds it and converges.
    pub async fn apply_at_start(&self) -> Result<super::Plan, ApplyError> {
        let mut tries = 1;
        loop {
            match self.apply().await {
                Err(ApplyError::Stopped(_)) if tries < START_TRIES => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                result => return result,
            }
        }
    }
}

/// How many times the start applies a file whose changes the API refuses part way.
const START_TRIES: u32 = 3;

#[async_trait::async_trait]
impl Reload for Reloader {
    async fn reload(&self) -> Result<Value, ReloadError> {
        match self.apply().await {
            Ok(plan) => Ok(json!({
                "changes": plan.changes,
                "unchanged": plan.unchanged,
                "summary": render(&plan, false),
            })),
            Err(ApplyError::Invalid(errors)) => Err(ReloadError::Invalid(
                errors.iter().map(ToString::to_string).collect(),
            )),
            Err(e) => Err(ReloadError::Refused(e.to_string())),
        }
    }
}
