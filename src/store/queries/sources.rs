//! Ingest sources, their URL tokens and their logs (`crate::ingest`). A source's `config`
//! holds its sender's secret, so it is sealed at rest like endpoint secrets (binding
//! `ingest_source.config:<id>`).

use async_trait::async_trait;

use super::{changed_one, key_column};
use crate::domain::ingest::{IngestLog, IngestSource, SourceKind};
use crate::domain::time::from_micros;
use crate::domain::{AppId, IngestLogId, SourceId, Timestamp, Uid};
use crate::store::engine::Engine;
use crate::store::error::unique_as;
use crate::store::page::push_page;
use crate::store::rows::{self, StoredRow, to_json};
use crate::store::sql::{Conn, Sql};
use crate::store::{Conflict, PageQuery, Result, SourceKey, SourceStore, StoreError};

const COLUMNS: &str = "id, uid, name, source_type, config, metadata, app_id, token, \
     next_run_at, created_at, updated_at";

const LOG_COLUMNS: &str = "id, source_id, status_code, error_text, headers, payload, msg_id, \
     created_at";

/// Where a source's config is sealed (see `domain::sealed`).
pub fn config_binding(id: &SourceId) -> String {
    format!("ingest_source.config:{id}")
}

fn source<E: Engine>(engine: &E, row: &impl StoredRow) -> Result<IngestSource> {
    let id = SourceId::from_stored(row.text("id")?);
    let stored = row.text("config")?;
    let text = engine
        .secrets()
        .open(&stored, &config_binding(&id))
        .map_err(|e| StoreError::Corrupt(format!("ingest source {id}'s config {e}")))?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("ingest source {id}'s config: {e}")))?;
    let source_type = row.text("source_type")?;
    let kind = SourceKind::parse(&source_type, &config).map_err(|e| {
        StoreError::Corrupt(format!("ingest source {id}: {}: {}", e.field, e.message))
    })?;
    let metadata = serde_json::from_str(&row.text("metadata")?)
        .map_err(|e| StoreError::Corrupt(format!("ingest source {id}'s metadata: {e}")))?;
    Ok(IngestSource {
        uid: row.opt_text("uid")?.map(Uid::from_stored),
        name: row.text("name")?,
        source_type,
        config,
        kind,
        metadata,
        app_id: AppId::from_stored(row.text("app_id")?),
        token: row.opt_text("token")?,
        next_run_at: row.opt_int("next_run_at")?.map(from_micros),
        created_at: from_micros(row.int("created_at")?),
        updated_at: from_micros(row.int("updated_at")?),
        id,
    })
}

fn log(row: &impl StoredRow) -> Result<IngestLog> {
    let id = row.text("id")?;
    let headers = serde_json::from_str(&row.text("headers")?)
        .map_err(|e| StoreError::Corrupt(format!("ingest log {id}'s headers: {e}")))?;
    let status = row.int("status_code")?;
    Ok(IngestLog {
        source_id: SourceId::from_stored(row.text("source_id")?),
        status_code: u16::try_from(status)
            .map_err(|_| StoreError::Corrupt(format!("ingest log {id}: status {status}")))?,
        error_text: row.text("error_text")?,
        headers,
        payload: row.opt_bytes("payload")?.unwrap_or_default(),
        msg_id: row.opt_text("msg_id")?,
        created_at: from_micros(row.int("created_at")?),
        id: IngestLogId::from_stored(id),
    })
}

#[async_trait]
impl<E: Engine> SourceStore for E {
    async fn insert_source(&self, s: &IngestSource) -> Result<()> {
        let config = self
            .secrets()
            .seal(&s.config.to_string(), &config_binding(&s.id));
        let insert = Sql::new(format!(
            "INSERT INTO ingest_source ({COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(s.id.as_str())
        .bind(s.uid.as_ref().map(|u| u.as_str()))
        .bind(&s.name)
        .bind(&s.source_type)
        .bind(config)
        .bind(to_json(&s.metadata))
        .bind(s.app_id.as_str())
        .bind(s.token.as_deref())
        .bind(s.next_run_at)
        .bind(s.created_at)
        .bind(s.updated_at);
        self.writes()
            .acquire()
            .await?
            .exec(&insert)
            .await
            .map_err(unique_as(Conflict::Uid))?;
        Ok(())
    }

    async fn get_source(&self, key: &SourceKey) -> Result<Option<IngestSource>> {
        let (column, value) = key_column(key);
        let get = Sql::new(format!(
            "SELECT {COLUMNS} FROM ingest_source WHERE {column} = $1"
        ))
        .bind(value);
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref().map(|r| source(self, r)).transpose()
    }

    async fn source_by_token(&self, token: &str, now: Timestamp) -> Result<Option<IngestSource>> {
        let current = Sql::new(format!(
            "SELECT {COLUMNS} FROM ingest_source WHERE token = $1"
        ))
        .bind(token);
        let earlier = Sql::new(format!(
            "SELECT {COLUMNS} FROM ingest_source WHERE id =
             (SELECT source_id FROM ingest_source_token WHERE token = $1 AND expires_at > $2)"
        ))
        .bind(token)
        .bind(now);
        let mut conn = self.reads().acquire().await?;
        let row = match conn.row(&current).await? {
            Some(row) => Some(row),
            None => conn.row(&earlier).await?,
        };
        row.as_ref().map(|r| source(self, r)).transpose()
    }

    async fn list_sources(&self, page: &PageQuery) -> Result<Vec<IngestSource>> {
        let mut list = Sql::new(format!("SELECT {COLUMNS} FROM ingest_source WHERE 1 = 1"));
        push_page(&mut list, "id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        found.iter().map(|r| source(self, r)).collect()
    }

    async fn update_source(&self, s: &IngestSource) -> Result<()> {
        let config = self
            .secrets()
            .seal(&s.config.to_string(), &config_binding(&s.id));
        let update = Sql::new(
            "UPDATE ingest_source SET uid = $2, name = $3, source_type = $4, config = $5,
             metadata = $6, token = $7, next_run_at = $8, updated_at = $9 WHERE id = $1",
        )
        .bind(s.id.as_str())
        .bind(s.uid.as_ref().map(|u| u.as_str()))
        .bind(&s.name)
        .bind(&s.source_type)
        .bind(config)
        .bind(to_json(&s.metadata))
        .bind(s.token.as_deref())
        .bind(s.next_run_at)
        .bind(s.updated_at);
        let mut conn = self.writes().acquire().await?;
        changed_one(conn.exec(&update).await.map_err(unique_as(Conflict::Uid))?)
    }

    async fn rotate_source_token(
        &self,
        id: &SourceId,
        new_token: &str,
        now: Timestamp,
        old_valid_until: Timestamp,
        max_valid_old: usize,
    ) -> Result<bool> {
        let mut tx = self.writes().begin().await?;
        let current = Sql::new(format!(
            "SELECT token FROM ingest_source WHERE id = $1{}",
            E::FOR_UPDATE
        ))
        .bind(id.as_str());
        let Some(row) = tx.row(&current).await? else {
            return Err(StoreError::NotFound);
        };
        let Some(old) = row.opt_text("token")? else {
            return Err(StoreError::NotFound);
        };
        let forget = Sql::new("DELETE FROM ingest_source_token WHERE expires_at <= $1").bind(now);
        tx.exec(&forget).await?;
        let count = Sql::new("SELECT count(*) AS n FROM ingest_source_token WHERE source_id = $1")
            .bind(id.as_str());
        let valid = tx
            .row(&count)
            .await?
            .map(|r| r.int("n"))
            .transpose()?
            .unwrap_or(0);
        if usize::try_from(valid).unwrap_or(usize::MAX) >= max_valid_old {
            return Ok(false);
        }
        let keep = Sql::new(
            "INSERT INTO ingest_source_token (token, source_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(old)
        .bind(id.as_str())
        .bind(old_valid_until);
        tx.exec(&keep).await?;
        let set = Sql::new("UPDATE ingest_source SET token = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(new_token)
            .bind(now);
        tx.exec(&set).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_ingest_log(&self, entry: &IngestLog) -> Result<()> {
        let insert = Sql::new(format!(
            "INSERT INTO ingest_log ({LOG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(entry.id.as_str())
        .bind(entry.source_id.as_str())
        .bind(i64::from(entry.status_code))
        .bind(&entry.error_text)
        .bind(to_json(&entry.headers))
        .bind(entry.payload.as_slice())
        .bind(entry.msg_id.as_deref())
        .bind(entry.created_at);
        self.writes().acquire().await?.exec(&insert).await?;
        Ok(())
    }

    async fn list_ingest_logs(
        &self,
        source: &SourceId,
        page: &PageQuery,
    ) -> Result<Vec<IngestLog>> {
        let mut list = Sql::new(format!(
            "SELECT {LOG_COLUMNS} FROM ingest_log WHERE source_id = $1"
        ))
        .bind(source.as_str());
        push_page(&mut list, "id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        rows::all(&found, log)
    }

    async fn due_cron_sources(&self, now: Timestamp, limit: usize) -> Result<Vec<IngestSource>> {
        let due = Sql::new(format!(
            "SELECT {COLUMNS} FROM ingest_source
             WHERE next_run_at IS NOT NULL AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2"
        ))
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let found = self.reads().acquire().await?.rows(&due).await?;
        found.iter().map(|r| source(self, r)).collect()
    }

    async fn advance_cron(&self, id: &SourceId, from: Timestamp, to: Timestamp) -> Result<bool> {
        let advance = Sql::new(
            "UPDATE ingest_source SET next_run_at = $3 WHERE id = $1 AND next_run_at = $2",
        )
        .bind(id.as_str())
        .bind(from)
        .bind(to);
        Ok(self.writes().acquire().await?.exec(&advance).await? > 0)
    }

    async fn prune_ingest_logs(&self, before: Timestamp, limit: usize) -> Result<u64> {
        let prune = Sql::new(
            "DELETE FROM ingest_log WHERE id IN
             (SELECT id FROM ingest_log WHERE created_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        Ok(self.writes().acquire().await?.exec(&prune).await?)
    }
}
