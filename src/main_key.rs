//! The main key that endpoint credentials are encrypted with at rest (see
//! `signing::at_rest` for the envelope, `domain::sealed` for what is sealed): the check
//! made at start, and `hookd rotate-main-key`.

use anyhow::Context;

use crate::config::Config;
use crate::store::{SecretStore, Store};

/// Endpoints read and rewritten per transaction by [`rotate_main_key`]: small enough that
/// each holds the write lock (SQLite) or its rows (PostgreSQL) for a few milliseconds.
pub const ROTATE_BATCH: usize = 100;

/// What [`rotate_main_key`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Values re-encrypted under the current key (or encrypted for the first time).
    pub rewritten: u64,
    /// Endpoints written by someone else while the command ran, left as they were written.
    pub skipped: u64,
}

/// Re-encrypts under `main_key` every endpoint credential (and ingest source config) that is not (plaintext, or under a
/// key of `previous_main_keys`), `batch` endpoints per short transaction, while the servers
/// keep running. Idempotent: a second run rewrites nothing. Needs `main_key`, and refuses to
/// start if any value is under a key the configuration does not have. `on_step` is told
/// how many values each step rewrote (for a progress line).
pub async fn rotate_main_key(
    store: &dyn Store,
    config: &Config,
    batch: usize,
    mut on_step: impl FnMut(u64),
) -> anyhow::Result<Rotated> {
    let keyring = config.keyring()?;
    if keyring.current_key_id().is_none() {
        anyhow::bail!(
            "main_key is not set: give the key to encrypt under as main_key, and the keys \
             values may still be under as previous_main_keys"
        );
    }
    check_secrets(store, config).await?;
    let mut rotated = Rotated::default();
    let mut after = String::new();
    loop {
        let step = store
            .reseal_secrets(&after, batch.max(1))
            .await
            .context("re-encrypting the stored secrets failed")?;
        rotated.rewritten += step.rewritten;
        rotated.skipped += step.skipped;
        on_step(step.rewritten);
        match step.last {
            Some(last) => after = last,
            None => break,
        }
    }
    let sources = store
        .reseal_source_configs()
        .await
        .context("re-encrypting the ingest sources' configs failed")?;
    rotated.rewritten += sources;
    on_step(sources);
    Ok(rotated)
}

/// Checks at start that every stored credential can be read with the configured main keys,
/// so that a missing key stops hookd with a message saying which, instead of failing each
/// request and delivery that reads an endpoint; and says what is stored unencrypted.
pub async fn check_secrets(
    store: &(impl SecretStore + ?Sized),
    config: &Config,
) -> anyhow::Result<()> {
    let keyring = config.keyring()?;
    let census = store
        .secrets_census()
        .await
        .context("cannot check the stored secrets against the main keys")?;
    for (id, n) in &census.by_key {
        if !keyring.has_key(id) {
            anyhow::bail!(
                "{n} stored endpoint secret or header values are encrypted under main key {id}, \
                 which is not configured: set main_key (or, while rotating, \
                 previous_main_keys) to the key they were written with. hookd does not start \
                 without it (see \"Secrets at rest\" in the README)"
            );
        }
    }
    match keyring.current_key_id() {
        None => tracing::warn!(
            "main_key is not set: endpoint secrets and headers are stored unencrypted \
             (see \"Secrets at rest\" in the README)"
        ),
        Some(current) => {
            if census.plaintext > 0 {
                tracing::warn!(
                    values = census.plaintext,
                    "endpoint secrets or headers written before main_key was set are still \
                     stored unencrypted: run `hookd rotate-main-key` to encrypt them"
                );
            }
            let old: u64 = census
                .by_key
                .iter()
                .filter(|(id, _)| id.as_str() != current)
                .map(|(_, n)| n)
                .sum();
            if old > 0 {
                tracing::info!(
                    values = old,
                    "endpoint secrets or headers are still encrypted under a previous main \
                     key: run `hookd rotate-main-key`, then remove it from previous_main_keys"
                );
            }
        }
    }
    Ok(())
}
