//! The operational events outbox (`operational_event`). Changes that hookd reports to the
//! operational webhook endpoints write their events here in their own transaction
//! ([`write_events`]); `crate::events` drains the table into messages of the internal
//! application ([`OperationalEventStore::take_operational_events`]).

use async_trait::async_trait;
use sqlx::{Pool, Transaction};

use crate::domain::events::{EndpointRef, OPERATIONAL_APP_UID, OperationalEvent};
use crate::domain::time::now;
use crate::domain::{AppId, EndpointId, EventTypeName, Uid};
use crate::store::engine::Engine;
use crate::store::rows::StoredRow;
use crate::store::sql::{Conn, Sql};
use crate::store::{OperationalEventStore, OutboxBatch, OutboxEvent, Result};

/// The job lock that lets one node at a time drain the outbox (PostgreSQL).
const DRAIN_JOB: &str = "operational-events";

/// Adds `events` to the outbox, on `conn` (inside the caller's transaction, so an event is
/// written if and only if the change it reports is).
pub(crate) async fn write_events(conn: &mut impl Conn, events: &[OperationalEvent]) -> Result<()> {
    let at = now();
    for event in events {
        let insert = Sql::new(
            "INSERT INTO operational_event (event_type, payload, created_at) VALUES ($1, $2, $3)",
        )
        .bind(event.event_type())
        .bind(event.payload())
        .bind(at);
        conn.exec(&insert).await?;
    }
    Ok(())
}

/// The endpoint an event would be about, read in the caller's transaction; `None` when it
/// belongs to the operational application, whose endpoints report nothing (an operational
/// endpoint's events would be delivered to itself).
pub(crate) async fn endpoint_ref(
    conn: &mut impl Conn,
    app: &AppId,
    endpoint_id: &EndpointId,
    endpoint_uid: Option<&Uid>,
) -> Result<Option<EndpointRef>> {
    let app_uid = Sql::new("SELECT uid FROM application WHERE id = $1").bind(app.as_str());
    let app_uid = match conn.row(&app_uid).await? {
        Some(row) => row.opt_text("uid")?,
        None => None,
    };
    if app_uid.as_deref() == Some(OPERATIONAL_APP_UID) {
        return Ok(None);
    }
    Ok(Some(EndpointRef {
        app_id: app.clone(),
        app_uid: app_uid.map(Uid::from_stored),
        endpoint_id: endpoint_id.clone(),
        endpoint_uid: endpoint_uid.cloned(),
    }))
}

#[async_trait]
impl<E: Engine> OperationalEventStore for E {
    async fn insert_operational_events(&self, events: &[OperationalEvent]) -> Result<()> {
        let mut tx = self.writes().begin().await?;
        write_events(&mut *tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_operational_events(&self, limit: usize) -> Result<Option<Box<dyn OutboxBatch>>> {
        take_outbox(self, Outbox::OPERATIONAL, limit).await
    }
}

/// An outbox table and the job lock its drain takes.
pub(crate) struct Outbox {
    table: &'static str,
    job: &'static str,
    /// Whether its rows name an application (`app_id`).
    with_app: bool,
}

impl Outbox {
    pub(crate) const OPERATIONAL: Outbox = Outbox {
        table: "operational_event",
        job: DRAIN_JOB,
        with_app: false,
    };
    pub(crate) const ENTITY: Outbox = Outbox {
        table: "entity_event",
        job: "entity-events",
        with_app: true,
    };
}

/// Takes `outbox`'s drain job with its oldest `limit` rows.
///
/// The job is held by a transaction on the read pool (on PostgreSQL the one pool) that
/// takes the job lock and reads the rows, and stays open while the caller turns them into
/// messages through other connections; the rows are deleted through the write pool. On
/// SQLite the lock is a no-op (one process drains) and the transaction only reads, so
/// it never stands in the way of the one write connection the messages need.
pub(crate) async fn take_outbox<E: Engine>(
    engine: &E,
    outbox: Outbox,
    limit: usize,
) -> Result<Option<Box<dyn OutboxBatch>>> {
    let mut hold = engine.reads().begin().await?;
    if !E::try_lock_job(&mut hold, outbox.job).await? {
        hold.rollback().await?;
        return Ok(None);
    }
    let app = if outbox.with_app { ", app_id" } else { "" };
    let oldest = Sql::new(format!(
        "SELECT id, event_type, payload{app} FROM {} ORDER BY id LIMIT $1",
        outbox.table
    ))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let rows = match hold.rows(&oldest).await {
        Ok(rows) => rows,
        Err(e) => {
            hold.rollback().await?;
            return Err(e.into());
        }
    };
    let events = rows
        .iter()
        .map(|row| {
            Ok(OutboxEvent {
                id: row.int("id")?,
                app: match outbox.with_app {
                    true => Some(AppId::from_stored(row.text("app_id")?)),
                    false => None,
                },
                event_type: EventTypeName::from_stored(row.text("event_type")?),
                payload: row.text("payload")?,
            })
        })
        .collect::<Result<Vec<_>>>();
    let events = match events {
        Ok(events) => events,
        Err(e) => {
            hold.rollback().await?;
            return Err(e);
        }
    };
    Ok(Some(Box::new(Held::<E> {
        hold,
        writes: engine.writes().clone(),
        table: outbox.table,
        events,
    })))
}

/// A batch of outbox rows with the drain job held by `hold`.
struct Held<E: Engine> {
    hold: Transaction<'static, E::Db>,
    writes: Pool<E::Db>,
    table: &'static str,
    events: Vec<OutboxEvent>,
}

#[async_trait]
impl<E: Engine> OutboxBatch for Held<E> {
    fn events(&self) -> &[OutboxEvent] {
        &self.events
    }

    async fn finish(self: Box<Self>) -> Result<()> {
        let Held {
            hold,
            writes,
            table,
            events,
        } = *self;
        let deleted: Result<()> = async {
            if !events.is_empty() {
                let mut delete = Sql::new(format!("DELETE FROM {table} WHERE id IN ("));
                delete.push_list(events.iter().map(|e| e.id)).push(")");
                writes.acquire().await?.exec(&delete).await?;
            }
            Ok(())
        }
        .await;
        // Ended explicitly either way: a dropped transaction would keep the job lock until
        // its connection is next used.
        match deleted {
            Ok(()) => hold.commit().await?,
            Err(e) => {
                hold.rollback().await?;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn release(self: Box<Self>) -> Result<()> {
        self.hold.rollback().await?;
        Ok(())
    }
}
