//! Operational webhooks: hookd's own events (`endpoint.created`, `endpoint.disabled`, …; see
//! [`crate::domain::events`]) delivered to the operational webhook endpoints.
//!
//! Those endpoints are endpoints of an internal application, uid [`OPERATIONAL_APP_UID`],
//! created with the first of them ([`operational_app_or_create`]); its messages are
//! delivered, signed, retried and logged by the same engine as any other. The API hides it:
//! no application list shows it and `/api/v1/app/hookd-operational/…` answers 404.
//!
//! Events wait in the `operational_event` outbox, written in the transaction of the change
//! they report. [`crate::outbox::run`] drains it ([`OperationalEvents`]), on every node:
//! - **Woken** by `wake` right after this node writes events (the endpoint routes notify it),
//!   and every [`crate::outbox::POLL`] for events other nodes (or the delivery engine) wrote.
//! - **In id order**, a batch of at most [`BATCH`] rows at a time: each row becomes a message
//!   of the internal application with the eventId `hookd-op-<row id>`, then the batch's rows
//!   are deleted. A row whose message exists already (the application's eventIds are
//!   unique) was turned into one by a drain that stopped before deleting it: it is not sent
//!   again. So every event becomes exactly one message, across restarts and nodes, and is
//!   delivered at least once, like any message.
//! - **One node at a time** on PostgreSQL: a batch is taken under a job lock that other
//!   nodes do not wait for (they skip their turn), so they do not all read the same rows.
//! - **Nobody listening:** while no operational endpoint exists, rows are deleted without a
//!   message; an event no endpoint subscribes to (`eventTypes`) makes no message either.
//!   Events that happened before an endpoint existed are not sent to it later.

use chrono::TimeDelta;

use crate::domain::events::OPERATIONAL_APP_UID;
use crate::domain::{AppKey, Application, Endpoint, EventId, Payload, ResourceKey, Uid};
use crate::store::{
    Conflict, Cursor, NewApplication, NewMessage, Order, OutboxEvent, PageQuery, Store, StoreError,
};

/// Outbox rows per batch: one short read, up to this many messages, one delete.
pub const BATCH: usize = 100;
/// Operational endpoints read per page when matching events to subscriptions.
const ENDPOINT_PAGE: usize = 250;

/// The message eventId of outbox row `id`.
pub fn event_id(id: i64) -> String {
    format!("hookd-op-{id}")
}

#[derive(Debug, Clone, Copy)]
pub struct EventSettings {
    /// How long the messages' payloads are kept (`payload_retention_days`); `None`: until
    /// expunged or pruned.
    pub payload_retention: Option<TimeDelta>,
}

fn operational_key() -> AppKey {
    ResourceKey::Uid(Uid::from_stored(OPERATIONAL_APP_UID.to_owned()))
}

/// The internal application, if an operational endpoint was ever created.
pub async fn operational_app(store: &dyn Store) -> Result<Option<Application>, StoreError> {
    store.get_application(&operational_key()).await
}

/// The internal application, created if it does not exist yet (by this call or a
/// concurrent one, on any node).
pub async fn operational_app_or_create(store: &dyn Store) -> Result<Application, StoreError> {
    if let Some(app) = operational_app(store).await? {
        return Ok(app);
    }
    let new = NewApplication {
        uid: Some(Uid::from_stored(OPERATIONAL_APP_UID.to_owned())),
        name: "hookd operational webhooks".into(),
        rate_limit: None,
        metadata: Default::default(),
    };
    match store.insert_application(new).await {
        Ok(app) => Ok(app),
        Err(StoreError::Conflict(Conflict::Uid)) => {
            operational_app(store).await?.ok_or(StoreError::NotFound)
        }
        Err(e) => Err(e),
    }
}

/// The operational events' outbox (see [`crate::outbox`]).
pub struct OperationalEvents(pub EventSettings);

#[async_trait::async_trait]
impl crate::outbox::Outbox for OperationalEvents {
    const WHAT: &'static str = "operational events";
    const BATCH: usize = BATCH;

    async fn take(
        &self,
        store: &dyn Store,
        limit: usize,
    ) -> Result<Option<Box<dyn crate::store::OutboxBatch>>, StoreError> {
        store.take_operational_events(limit).await
    }

    async fn send(&self, store: &dyn Store, events: &[OutboxEvent]) -> Result<usize, StoreError> {
        send(store, self.0, events).await
    }
}

/// Writes a message of the internal application for each event some operational endpoint
/// subscribes to; returns how many were written (not counting those written before).
async fn send(
    store: &dyn Store,
    settings: EventSettings,
    events: &[OutboxEvent],
) -> Result<usize, StoreError> {
    let Some(app) = operational_app(store).await? else {
        return Ok(0);
    };
    let endpoints = all_endpoints(store, &app).await?;
    let mut written = 0;
    for event in events {
        let wanted = endpoints
            .iter()
            .any(|e| e.subscription.accepts(&event.event_type, None));
        if !wanted {
            continue;
        }
        let new = NewMessage {
            app: ResourceKey::Id(app.id.clone()),
            create_app: None,
            event_type: event.event_type.clone(),
            event_id: Some(EventId::from_stored(event_id(event.id))),
            channels: None,
            payload: Payload::from_stored(event.payload.clone()),
            payload_retention: settings.payload_retention,
            deliver_at: None,
            priority: None,
            only_endpoint: None,
            direct: None,
            key: None,
        };
        match store.enqueue_message(new).await {
            Ok(_) => written += 1,
            // Written by a drain that stopped before deleting the row.
            Err(StoreError::Conflict(Conflict::EventId)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

async fn all_endpoints(store: &dyn Store, app: &Application) -> Result<Vec<Endpoint>, StoreError> {
    let mut all = Vec::new();
    let mut cursor = Cursor::Start;
    loop {
        let page = PageQuery {
            limit: ENDPOINT_PAGE,
            cursor,
            order: Order::Ascending,
        };
        let mut found = store.list_endpoints(&app.id, None, &page).await?;
        let more = found.len() > ENDPOINT_PAGE;
        found.truncate(ENDPOINT_PAGE);
        cursor = match found.last() {
            Some(last) if more => Cursor::After(last.id.to_string()),
            _ => {
                all.extend(found);
                return Ok(all);
            }
        };
        all.extend(found);
    }
}
