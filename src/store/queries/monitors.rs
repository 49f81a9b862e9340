//! Freshness monitors. A check reads the application's messages newer than the last one it
//! looked at (`scanned_to`), so each message is read at most once per monitor, and only
//! when the monitor is due or stale; the hot path (ingest) does not know monitors exist.
//! A check that changes the state writes its operational event in the same transaction,
//! with the monitor's row locked (PostgreSQL), so each change is reported exactly once
//! whatever the number of nodes checking.

use async_trait::async_trait;
use chrono::TimeDelta;

use super::operational::write_events;
use crate::domain::events::{MonitorEventData, OperationalEvent};
use crate::domain::time::{from_micros, now};
use crate::domain::{
    AppId, Deadline, EventTypeName, Expectation, Monitor, MonitorId, MonitorState, SourceId,
    Timestamp, Uid,
};
use crate::store::engine::Engine;
use crate::store::page::push_page;
use crate::store::rows::{self, StoredRow};
use crate::store::sql::{Conn, Sql};
use crate::store::{MonitorStore, NewMonitor, PageQuery, Result, StoreError};

const COLUMNS: &str = "id, name, description, app_id, source_id, event_type, max_silence, \
     deadline, state, last_seen_at, state_since, created_at, updated_at";

pub fn monitor(row: &impl StoredRow) -> Result<Monitor> {
    let state = row.int("state")?;
    Ok(Monitor {
        id: MonitorId::from_stored(row.text("id")?),
        name: row.text("name")?,
        description: row.text("description")?,
        app_id: AppId::from_stored(row.text("app_id")?),
        source_id: row.opt_text("source_id")?.map(SourceId::from_stored),
        event_type: row.opt_text("event_type")?.map(EventTypeName::from_stored),
        expect: match (row.opt_int("max_silence")?, row.opt_text("deadline")?) {
            (Some(secs), _) => Expectation::Silence(TimeDelta::seconds(secs)),
            (None, Some(text)) => Expectation::Deadline(
                Deadline::from_stored(&text)
                    .map_err(|e| StoreError::Corrupt(format!("monitor deadline {text}: {e}")))?,
            ),
            (None, None) => return Err(StoreError::Corrupt("monitor expects nothing".into())),
        },
        state: MonitorState::from_stored(state)
            .ok_or_else(|| StoreError::Corrupt(format!("monitor state {state}")))?,
        last_seen_at: row.opt_int("last_seen_at")?.map(from_micros),
        state_since: from_micros(row.int("state_since")?),
        created_at: from_micros(row.int("created_at")?),
        updated_at: from_micros(row.int("updated_at")?),
    })
}

fn silence_secs(expect: &Expectation) -> Option<i64> {
    match expect {
        Expectation::Silence(silence) => Some(silence.num_seconds()),
        Expectation::Deadline(_) => None,
    }
}

fn deadline_text(expect: &Expectation) -> Option<String> {
    match expect {
        Expectation::Silence(_) => None,
        Expectation::Deadline(deadline) => Some(deadline.as_str().to_owned()),
    }
}

#[async_trait]
impl<E: Engine> MonitorStore for E {
    async fn insert_monitor(&self, new: NewMonitor) -> Result<Monitor> {
        let at = now();
        let m = Monitor {
            id: MonitorId::generate(),
            name: new.name,
            description: new.description,
            app_id: new.app_id,
            source_id: new.source_id,
            event_type: new.event_type,
            expect: new.expect,
            state: MonitorState::Ok,
            last_seen_at: None,
            state_since: at,
            created_at: at,
            updated_at: at,
        };
        let insert = Sql::new(format!(
            "INSERT INTO monitor ({COLUMNS}, due_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $10, $10, $11)"
        ))
        .bind(m.id.as_str())
        .bind(&m.name)
        .bind(&m.description)
        .bind(m.app_id.as_str())
        .bind(m.source_id.as_ref().map(SourceId::as_str))
        .bind(m.event_type.as_ref().map(|e| e.as_str()))
        .bind(silence_secs(&m.expect))
        .bind(deadline_text(&m.expect))
        .bind(m.state.to_stored())
        .bind(at)
        .bind(m.due_at());
        self.writes().acquire().await?.exec(&insert).await?;
        Ok(m)
    }

    async fn get_monitor(&self, id: &MonitorId) -> Result<Option<Monitor>> {
        let get =
            Sql::new(format!("SELECT {COLUMNS} FROM monitor WHERE id = $1")).bind(id.as_str());
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref().map(monitor).transpose()
    }

    async fn list_monitors(&self, page: &PageQuery) -> Result<Vec<Monitor>> {
        let mut list = Sql::new(format!("SELECT {COLUMNS} FROM monitor WHERE 1 = 1"));
        push_page(&mut list, "id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        rows::all(&found, monitor)
    }

    async fn update_monitor(&self, mut m: Monitor) -> Result<Monitor> {
        m.updated_at = now();
        let update = Sql::new(
            "UPDATE monitor SET name = $2, description = $3, max_silence = $4, deadline = $5,
             due_at = $6, updated_at = $7 WHERE id = $1",
        )
        .bind(m.id.as_str())
        .bind(&m.name)
        .bind(&m.description)
        .bind(silence_secs(&m.expect))
        .bind(deadline_text(&m.expect))
        .bind(m.due_at())
        .bind(m.updated_at);
        let changed = self.writes().acquire().await?.exec(&update).await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(m)
    }

    async fn delete_monitor(&self, id: &MonitorId) -> Result<bool> {
        let delete = Sql::new("DELETE FROM monitor WHERE id = $1").bind(id.as_str());
        Ok(self.writes().acquire().await?.exec(&delete).await? > 0)
    }

    async fn monitors_to_check(&self, now: Timestamp, limit: usize) -> Result<Vec<MonitorId>> {
        let due = Sql::new(
            "SELECT id FROM monitor WHERE due_at <= $1 OR state = $2 ORDER BY due_at LIMIT $3",
        )
        .bind(now)
        .bind(MonitorState::Stale.to_stored())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let found = self.reads().acquire().await?.rows(&due).await?;
        found
            .iter()
            .map(|row| row.text("id").map(MonitorId::from_stored))
            .collect()
    }

    async fn check_monitor(
        &self,
        id: &MonitorId,
        at: Timestamp,
    ) -> Result<Option<(Monitor, bool)>> {
        let mut tx = self.writes().begin().await?;
        let get = Sql::new(format!(
            "SELECT {COLUMNS}, scanned_to FROM monitor WHERE id = $1{}",
            E::FOR_UPDATE
        ))
        .bind(id.as_str());
        let Some(row) = tx.row(&get).await? else {
            return Ok(None);
        };
        let mut m = monitor(&row)?;
        let scanned_to = row.opt_text("scanned_to")?;
        // The application's newest message now, then the newest matching one since the last
        // look: messages get ids in commit order, so none can appear below `newest` later.
        let newest =
            Sql::new("SELECT max(id) AS id FROM message WHERE app_id = $1").bind(m.app_id.as_str());
        let newest = match tx.row(&newest).await? {
            Some(row) => row.opt_text("id")?,
            None => None,
        };
        let mut scanned = scanned_to.clone();
        if let Some(newest) = newest.filter(|n| scanned_to.as_ref().is_none_or(|s| n > s)) {
            let mut seen =
                Sql::new("SELECT created_at FROM message WHERE app_id = $1 AND id <= $2")
                    .bind(m.app_id.as_str())
                    .bind(newest.as_str());
            if let Some(from) = &scanned_to {
                seen.push(" AND id > ").push_bind(from.as_str());
            }
            if let Some(event_type) = &m.event_type {
                seen.push(" AND event_type = ")
                    .push_bind(event_type.as_str());
            }
            seen.push(" ORDER BY id DESC LIMIT 1");
            if let Some(row) = tx.row(&seen).await? {
                let created = from_micros(row.int("created_at")?);
                m.last_seen_at = Some(m.last_seen_at.map_or(created, |l| l.max(created)));
            }
            scanned = Some(newest);
        }
        let state = if m.due_at() <= at {
            MonitorState::Stale
        } else {
            MonitorState::Ok
        };
        let changed = state != m.state;
        if changed {
            m.state = state;
            m.state_since = at;
        }
        let update = Sql::new(
            "UPDATE monitor SET last_seen_at = $2, scanned_to = $3, due_at = $4, state = $5,
             state_since = $6 WHERE id = $1",
        )
        .bind(m.id.as_str())
        .bind(m.last_seen_at)
        .bind(scanned)
        .bind(m.due_at())
        .bind(m.state.to_stored())
        .bind(m.state_since);
        tx.exec(&update).await?;
        if changed {
            let uid = Sql::new("SELECT uid FROM application WHERE id = $1").bind(m.app_id.as_str());
            let app_uid = match tx.row(&uid).await? {
                Some(row) => row.opt_text("uid")?.map(Uid::from_stored),
                None => None,
            };
            let data = MonitorEventData {
                monitor_id: m.id.clone(),
                name: m.name.clone(),
                app_id: m.app_id.clone(),
                app_uid,
                event_type: m.event_type.as_ref().map(|e| e.as_str().to_owned()),
                max_silence: silence_secs(&m.expect),
                deadline: deadline_text(&m.expect),
                last_seen_at: m.last_seen_at,
                since: at,
            };
            let event = match state {
                MonitorState::Stale => OperationalEvent::MonitorStale(data),
                MonitorState::Ok => OperationalEvent::MonitorRecovered(data),
            };
            write_events(&mut *tx, &[event]).await?;
        }
        tx.commit().await?;
        Ok(Some((m, changed)))
    }
}
