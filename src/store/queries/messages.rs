//! Reading messages and removing their payloads. Accepting them is the hot path, in each engine's [`QueueStore`].
//!
//! [`QueueStore`]: crate::store::QueueStore

use async_trait::async_trait;

use super::{EXPUNGE_PAYLOAD, changed_one, push_message_filter};
use crate::domain::{AppId, DeliveryStatus, EventId, Message, MessageId, MessageKey, Trigger};
use crate::store::engine::Engine;
use crate::store::page::push_page;
use crate::store::rows::{self, MESSAGE_COLUMNS, StoredRow};
use crate::store::sql::{Conn, Sql};
use crate::store::{
    Conflict, MessageFilter, MessageStore, PageQuery, PurgeStep, Result, StoreError,
};

#[async_trait]
impl<E: Engine> MessageStore for E {
    async fn get_message(&self, app: &AppId, key: &MessageKey) -> Result<Option<Message>> {
        let (column, value) = match key {
            MessageKey::Id(id) => ("id", id.as_str()),
            MessageKey::EventId(event_id) => ("event_id", event_id.as_str()),
        };
        let get = Sql::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM message WHERE app_id = $1 AND {column} = $2"
        ))
        .bind(app.as_str())
        .bind(value);
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref().map(rows::message).transpose()
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &PageQuery,
    ) -> Result<Vec<Message>> {
        let mut list = Sql::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM message WHERE app_id = "
        ));
        list.push_bind(app.as_str());
        push_message_filter::<E>(&mut list, filter, "message");
        push_page(&mut list, "id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        rows::all(&found, rows::message)
    }

    async fn cancel_scheduled(&self, app: &AppId, id: &MessageId) -> Result<()> {
        let mut tx = self.writes().begin().await?;
        let message = Sql::new(format!(
            "SELECT deliver_at FROM message WHERE app_id = $1 AND id = $2{}",
            E::FOR_UPDATE
        ))
        .bind(app.as_str())
        .bind(id.as_str());
        let Some(found) = tx.row(&message).await? else {
            return Err(StoreError::NotFound);
        };
        if found.opt_int("deliver_at")?.is_none() {
            return Err(StoreError::Conflict(Conflict::NotScheduled));
        }
        // Locked first (waiting for a claim that holds one of them to commit), then checked:
        // a claim that commits later finds them gone.
        let deliveries = Sql::new(format!(
            "SELECT status, attempts, trigger_type FROM delivery WHERE msg_id = $1{}",
            E::FOR_UPDATE
        ))
        .bind(id.as_str());
        for delivery in tx.rows(&deliveries).await? {
            // Never attempted: pending, no attempt on its schedule, and not re-queued by
            // hand (a resend or recover restarts the count after attempts were made).
            let untouched = delivery.int("status")? == DeliveryStatus::Pending.code()
                && delivery.int("attempts")? == 0
                && delivery.int("trigger_type")? == Trigger::Scheduled.code();
            if !untouched {
                return Err(StoreError::Conflict(Conflict::DeliveryStarted));
            }
        }
        // On PostgreSQL deliveries hold no foreign key to their message (see its
        // migrations): delete them first, on both.
        let deliveries = Sql::new("DELETE FROM delivery WHERE msg_id = $1").bind(id.as_str());
        tx.exec(&deliveries).await?;
        let delete = Sql::new("DELETE FROM message WHERE app_id = $1 AND id = $2")
            .bind(app.as_str())
            .bind(id.as_str());
        changed_one(tx.exec(&delete).await?)?;
        tx.commit().await?;
        Ok(())
    }

    async fn expunge_message_content(&self, app: &AppId, id: &MessageId) -> Result<()> {
        let expunge = Sql::new(format!("{EXPUNGE_PAYLOAD} WHERE app_id = $1 AND id = $2"))
            .bind(app.as_str())
            .bind(id.as_str());
        changed_one(self.writes().acquire().await?.exec(&expunge).await?)
    }

    async fn expunge_messages(
        &self,
        app: &AppId,
        keys: &[MessageKey],
    ) -> Result<Vec<(MessageId, Option<EventId>)>> {
        let ids: Vec<&str> = keys
            .iter()
            .filter_map(|k| match k {
                MessageKey::Id(id) => Some(id.as_str()),
                MessageKey::EventId(_) => None,
            })
            .collect();
        let event_ids: Vec<&str> = keys
            .iter()
            .filter_map(|k| match k {
                MessageKey::EventId(e) => Some(e.as_str()),
                MessageKey::Id(_) => None,
            })
            .collect();
        let mut expunge = Sql::new(format!("{EXPUNGE_PAYLOAD} WHERE app_id = "));
        expunge.push_bind(app.as_str()).push(" AND (FALSE");
        if !ids.is_empty() {
            expunge.push(" OR id IN (").push_list(ids).push(")");
        }
        if !event_ids.is_empty() {
            expunge
                .push(" OR event_id IN (")
                .push_list(event_ids)
                .push(")");
        }
        expunge.push(") RETURNING id, event_id");
        let found = self.writes().acquire().await?.rows(&expunge).await?;
        found
            .iter()
            .map(|r| {
                Ok((
                    MessageId::from_stored(r.text("id")?),
                    r.opt_text("event_id")?.map(EventId::from_stored),
                ))
            })
            .collect()
    }

    /// Walks the application's messages by id (the `message_by_app` index), so a step
    /// costs its batch whatever the application's size.
    async fn purge_payloads(
        &self,
        app: &AppId,
        after: Option<&MessageId>,
        limit: usize,
    ) -> Result<PurgeStep> {
        let mut tx = self.writes().begin().await?;
        let mut next = Sql::new("SELECT id FROM message WHERE app_id = ");
        next.push_bind(app.as_str());
        if let Some(after) = after {
            next.push(" AND id > ").push_bind(after.as_str());
        }
        next.push(" ORDER BY id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let ids = tx
            .rows(&next)
            .await?
            .iter()
            .map(|r| r.text("id"))
            .collect::<Result<Vec<_>>>()?;
        let Some(last) = ids.last() else {
            tx.commit().await?;
            return Ok(PurgeStep {
                purged: 0,
                last: None,
            });
        };
        let mut purge = Sql::new(format!(
            "{EXPUNGE_PAYLOAD} WHERE payload IS NOT NULL AND id IN ("
        ));
        purge.push_list(ids.iter().map(String::as_str)).push(")");
        let purged = tx.exec(&purge).await?;
        tx.commit().await?;
        Ok(PurgeStep {
            purged,
            last: Some(MessageId::from_stored(last.clone())),
        })
    }
}
