//! Secrets at rest: counting the credential values by the main key they are sealed under,
//! and re-encrypting them under the current key (`hookd rotate-main-key`).

use async_trait::async_trait;

use crate::domain::sealed::sealed_key_id;
use crate::store::engine::Engine;
use crate::store::queries::sources::config_binding;
use crate::store::rows::{
    SEALED_ENDPOINT_COLUMNS, StoredRow, endpoint_binding, holds_nothing, seal_endpoint_column,
};
use crate::store::sql::{Conn, Sql};
use crate::store::{ResealStep, Result, SecretStore, SecretsCensus, StoreError};

/// Each credential value's first characters: `enc:v1:<8 hex digits>:` for a sealed one (no
/// further: the rest differs for every value, and the groups must stay one per key), or the
/// empty string for plaintext; empty lists and maps left out.
const CENSUS: &str = "SELECT CASE WHEN v LIKE 'enc:%' THEN substr(v, 1, 16) ELSE '' END AS k,
       count(*) AS n
     FROM (SELECT secret AS v FROM endpoint
           UNION ALL SELECT previous_secrets FROM endpoint
           UNION ALL SELECT headers FROM endpoint
           UNION ALL SELECT config FROM ingest_source) AS s
     WHERE v NOT IN ('[]', '{}')
     GROUP BY 1";

#[async_trait]
impl<E: Engine> SecretStore for E {
    async fn secrets_census(&self) -> Result<SecretsCensus> {
        let found = self
            .reads()
            .acquire()
            .await?
            .rows(&Sql::new(CENSUS))
            .await?;
        let mut census = SecretsCensus::default();
        for row in &found {
            let prefix = row.text("k")?;
            let n = u64::try_from(row.int("n")?).unwrap_or(0);
            if prefix.is_empty() {
                census.plaintext += n;
            } else {
                let id = sealed_key_id(&prefix).unwrap_or("?").to_owned();
                *census.by_key.entry(id).or_default() += n;
            }
        }
        Ok(census)
    }

    async fn reseal_secrets(&self, after: &str, limit: usize) -> Result<ResealStep> {
        let read = Sql::new(
            "SELECT id, secret, previous_secrets, headers FROM endpoint WHERE id > $1
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let found = self.reads().acquire().await?.rows(&read).await?;
        let mut step = ResealStep::default();
        let mut updates = Vec::new();
        for row in &found {
            let id = row.text("id")?;
            let mut stored = Vec::with_capacity(SEALED_ENDPOINT_COLUMNS.len());
            let mut changed = 0;
            for column in SEALED_ENDPOINT_COLUMNS {
                let old = row.text(column)?;
                let new = if holds_nothing(&old) || self.secrets().is_current(&old) {
                    old.clone()
                } else {
                    let plain = self
                        .secrets()
                        .open(&old, &endpoint_binding(column, &id))
                        .map_err(|e| StoreError::Sealed(format!("endpoint {id}: {column} {e}")))?;
                    changed += 1;
                    seal_endpoint_column(self.secrets(), column, &id, &plain)
                };
                stored.push((old, new));
            }
            if changed > 0 {
                updates.push((id.clone(), stored, changed));
            }
            step.last = Some(id);
        }
        if updates.is_empty() {
            return Ok(step);
        }
        let mut tx = self.writes().begin().await?;
        for (id, stored, changed) in updates {
            let [(old_s, new_s), (old_p, new_p), (old_h, new_h)]: [(String, String); 3] =
                stored.try_into().expect("one pair per sealed column");
            // Only if nobody wrote the row since it was read: a write made meanwhile sealed
            // it under its writer's current key, and must not be undone.
            let update = Sql::new(
                "UPDATE endpoint SET secret = $2, previous_secrets = $3, headers = $4
                 WHERE id = $1 AND secret = $5 AND previous_secrets = $6 AND headers = $7",
            )
            .bind(id.as_str())
            .bind(new_s)
            .bind(new_p)
            .bind(new_h)
            .bind(old_s)
            .bind(old_p)
            .bind(old_h);
            match tx.exec(&update).await? {
                0 => step.skipped += 1,
                _ => step.rewritten += changed,
            }
        }
        tx.commit().await?;
        Ok(step)
    }

    async fn reseal_source_configs(&self) -> Result<u64> {
        let read = Sql::new("SELECT id, config FROM ingest_source ORDER BY id");
        let found = self.reads().acquire().await?.rows(&read).await?;
        let mut rewritten = 0;
        for row in &found {
            let id = crate::domain::SourceId::from_stored(row.text("id")?);
            let old = row.text("config")?;
            if self.secrets().is_current(&old) {
                continue;
            }
            let binding = config_binding(&id);
            let plain = self
                .secrets()
                .open(&old, &binding)
                .map_err(|e| StoreError::Sealed(format!("ingest source {id}: config {e}")))?;
            let new = self.secrets().seal(&plain, &binding);
            // Only if nobody wrote the row since it was read (see `reseal_secrets`).
            let update =
                Sql::new("UPDATE ingest_source SET config = $2 WHERE id = $1 AND config = $3")
                    .bind(id.as_str())
                    .bind(new)
                    .bind(old);
            rewritten += self.writes().acquire().await?.exec(&update).await?;
        }
        Ok(rewritten)
    }
}
