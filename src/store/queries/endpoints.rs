//! Endpoints. Inserts take the application's `endpoint:` list lock (ids in commit order);
//! disabling an endpoint parks its pending deliveries and enabling it makes them due at once.
//! Every write adds its operational events to the outbox in its transaction (`operational`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::operational::{endpoint_ref, write_events};
use super::{changed_one, greatest_id, key_column};
use crate::domain::events::{
    DisableReason, DisabledData, EndpointRef, HealthState, OperationalEvent,
};
use crate::domain::health::HealthCounters;
use crate::domain::sealed::SecretsAtRest;
use crate::domain::time::now;
use crate::domain::{AppId, Endpoint, EndpointId, EndpointKey, Uid};
use crate::store::engine::Engine;
use crate::store::error::unique_as;
use crate::store::fifo;
use crate::store::health::{HEALTH_COLUMNS, counters};
use crate::store::page::push_page;
use crate::store::rows::{
    self, ENDPOINT_COLUMNS, StoredRow, opt_to_json, previous_secrets_json, retry_policy_json,
    seal_endpoint_column, signature_json, to_json,
};
use crate::store::sql::{Conn, Sql};
use crate::store::{Conflict, EndpointStore, NewEndpoint, PageQuery, Result, StoreError};

/// Parks (`$2` true) or unparks at `$3` the pending deliveries of endpoint `$1`; also run by
/// SQLite's batch writer when an endpoint answers 410 Gone. `status IN (1, 3)` repeats
/// `delivery_due_by_endpoint`'s predicate so SQLite searches that index rather than every
/// delivery the endpoint ever had; only the deliveries that change are written. A delivery
/// of a message whose `deliverAt` is still ahead is unparked due at that time, not at once.
/// A FIFO endpoint's line stays parked behind its head (`store::fifo`): only the head is
/// unparked.
pub(crate) const PARK_OR_UNPARK: &str = "UPDATE delivery SET next_attempt_at =
     CASE WHEN $2 THEN NULL ELSE COALESCE(next_attempt_at,
       (SELECT m.deliver_at FROM message m WHERE m.id = delivery.msg_id AND m.deliver_at > $3),
       $3) END
     WHERE endpoint_id = $1 AND status IN (1, 3) AND status = 1
       AND (next_attempt_at IS NULL) <> $2
       AND ($2 OR NOT EXISTS (SELECT 1 FROM endpoint e
            WHERE e.id = $1 AND e.ordering = 1 AND COALESCE(e.fifo_head, 0) <> delivery.id))";

#[async_trait]
impl<E: Engine> EndpointStore for E {
    async fn insert_endpoint(&self, new: NewEndpoint) -> Result<Endpoint> {
        let mut tx = self.writes().begin().await?;
        E::lock_lists(&mut tx, &[format!("endpoint:{}", new.app_id)]).await?;
        let last = Sql::new("SELECT max(id) AS id FROM endpoint WHERE app_id = $1")
            .bind(new.app_id.as_str());
        let last = greatest_id(&mut *tx, last).await?;
        let now = now();
        let endpoint = Endpoint {
            id: EndpointId::generate_after(last.as_deref()),
            app_id: new.app_id,
            uid: new.uid,
            url: new.url,
            description: new.description,
            disabled: new.disabled,
            rate_limit: new.rate_limit,
            subscription: new.subscription,
            metadata: new.metadata,
            headers: new.headers,
            secret: new.secret,
            previous_secrets: Vec::new(),
            signature: new.signature,
            auto_disable_after_failures: new.auto_disable_after_failures,
            auto_disable_after_secs: new.auto_disable_after_secs,
            retry_policy: new.retry_policy.map(Arc::new),
            ordering: new.ordering,
            created_at: now,
            updated_at: now,
        };
        // Inserts nothing if the application was deleted since the caller looked it up.
        let insert = endpoint_fields(
            Sql::new(
                "INSERT INTO endpoint (app_id, id, uid, url, description, disabled, rate_limit,
                 event_types, channels, metadata, headers, secret, previous_secrets, updated_at,
                 signature, auto_disable_after_failures, auto_disable_after_secs, retry_policy,
                 ordering, created_at)
                 SELECT id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $18, $19, $14
                 FROM application WHERE id = $1",
            ),
            &endpoint,
            self.secrets(),
        );
        let inserted = tx.exec(&insert).await.map_err(unique_as(Conflict::Uid))?;
        changed_one(inserted)?;
        let about = endpoint_ref(
            &mut *tx,
            &endpoint.app_id,
            &endpoint.id,
            endpoint.uid.as_ref(),
        );
        if let Some(about) = about.await? {
            write_events(&mut *tx, &[OperationalEvent::EndpointCreated(about)]).await?;
        }
        tx.commit().await?;
        Ok(endpoint)
    }

    async fn get_endpoint(&self, app: &AppId, key: &EndpointKey) -> Result<Option<Endpoint>> {
        let (column, value) = key_column(key);
        let get = Sql::new(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE app_id = $1 AND {column} = $2"
        ))
        .bind(app.as_str())
        .bind(value);
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref()
            .map(|row| rows::endpoint(row, self.secrets()))
            .transpose()
    }

    async fn update_endpoint(&self, mut endpoint: Endpoint) -> Result<Endpoint> {
        endpoint.updated_at = now();
        let update = endpoint_fields(
            Sql::new(
                "UPDATE endpoint SET uid = $3, url = $4, description = $5, disabled = $6,
                 rate_limit = $7, event_types = $8, channels = $9, metadata = $10, headers = $11,
                 secret = $12, previous_secrets = $13, updated_at = $14, signature = $15,
                 auto_disable_after_failures = $16, auto_disable_after_secs = $17,
                 retry_policy = $18, ordering = $19,
                 fifo_head = CASE WHEN $19 = 1 THEN fifo_head END
                 WHERE app_id = $1 AND id = $2",
            ),
            &endpoint,
            self.secrets(),
        );
        let mut tx = self.writes().begin().await?;
        // Changes (and locks) the row only if `disabled` changes: 1 row means a transition.
        // A concurrent update making the same change waits for the lock and then finds
        // nothing to change, so one transition is reported, not two.
        let flip = Sql::new(
            "UPDATE endpoint SET disabled = $3 WHERE app_id = $1 AND id = $2 AND disabled <> $3",
        )
        .bind(endpoint.app_id.as_str())
        .bind(endpoint.id.as_str())
        .bind(endpoint.disabled);
        let flipped = tx.exec(&flip).await? == 1;
        changed_one(tx.exec(&update).await.map_err(unique_as(Conflict::Uid))?)?;
        let about = endpoint_ref(
            &mut *tx,
            &endpoint.app_id,
            &endpoint.id,
            endpoint.uid.as_ref(),
        );
        if let Some(about) = about.await? {
            write_events(&mut *tx, &update_events(about, flipped, endpoint.disabled)).await?;
        }
        let park = Sql::new(PARK_OR_UNPARK)
            .bind(endpoint.id.as_str())
            .bind(endpoint.disabled)
            .bind(endpoint.updated_at);
        let mut moved = tx.exec(&park).await?;
        if endpoint.ordering.is_fifo() && !endpoint.disabled {
            // Enabled, or made FIFO: its line needs a head (the row is locked by the update).
            let head = fifo::promote(&mut *tx, endpoint.id.as_str(), endpoint.updated_at).await?;
            moved += u64::from(head.is_some());
        }
        if moved > 0 && !endpoint.disabled {
            E::notify_due(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(endpoint)
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<()> {
        let mut tx = self.writes().begin().await?;
        let delete = Sql::new("DELETE FROM endpoint WHERE app_id = $1 AND id = $2 RETURNING uid")
            .bind(app.as_str())
            .bind(id.as_str());
        let Some(deleted) = tx.row(&delete).await? else {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        };
        let uid = deleted.opt_text("uid")?.map(Uid::from_stored);
        if let Some(about) = endpoint_ref(&mut *tx, app, id, uid.as_ref()).await? {
            write_events(&mut *tx, &[OperationalEvent::EndpointDeleted(about)]).await?;
        }
        // Its token bucket (`throttleRate`).
        let bucket =
            Sql::new("DELETE FROM throttle WHERE key = 'endpoint:' || $1").bind(id.as_str());
        tx.exec(&bucket).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_endpoints(
        &self,
        app: &AppId,
        health: Option<HealthState>,
        page: &PageQuery,
    ) -> Result<Vec<Endpoint>> {
        let mut list = Sql::new(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE app_id = "
        ));
        list.push_bind(app.as_str());
        if let Some(state) = health {
            // The state an endpoint shows: see `domain::health`.
            list.push(
                " AND CASE WHEN disabled THEN 'disabled' ELSE COALESCE((SELECT h.state
                   FROM endpoint_health h WHERE h.endpoint_id = endpoint.id), 'healthy') END = ",
            )
            .push_bind(state.as_str());
        }
        push_page(&mut list, "id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        found
            .iter()
            .map(|row| rows::endpoint(row, self.secrets()))
            .collect()
    }

    async fn endpoint_health(
        &self,
        ids: &[EndpointId],
    ) -> Result<HashMap<EndpointId, HealthCounters>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut get = Sql::new(format!(
            "SELECT h.endpoint_id, {HEALTH_COLUMNS} FROM endpoint_health h WHERE h.endpoint_id IN ("
        ));
        get.push_list(ids.iter().map(|id| id.as_str())).push(")");
        let found = self.reads().acquire().await?.rows(&get).await?;
        let mut out = HashMap::with_capacity(found.len());
        for row in &found {
            if let Some(counters) = counters(row)? {
                out.insert(EndpointId::from_stored(row.text("endpoint_id")?), counters);
            }
        }
        Ok(out)
    }
}

/// What an update reports: always `endpoint.updated`; then, if `disabled` changed, the
/// transition (a manual one: updates are the API's).
fn update_events(about: EndpointRef, flipped: bool, disabled: bool) -> Vec<OperationalEvent> {
    let mut events = vec![OperationalEvent::EndpointUpdated(about.clone())];
    if flipped && disabled {
        events.push(OperationalEvent::EndpointDisabled(DisabledData {
            endpoint: about,
            trigger: DisableReason::Manual.trigger(),
            reason: DisableReason::Manual,
            fail_since: None,
        }));
    } else if flipped {
        events.push(OperationalEvent::EndpointEnabled(about));
    }
    events
}

/// Binds `$1 … $19` of an insert or update: the keys, then every stored field but the
/// creation time, the credentials sealed with `at_rest`.
fn endpoint_fields(sql: Sql, e: &Endpoint, at_rest: &dyn SecretsAtRest) -> Sql {
    let id = e.id.as_str();
    let seal = |column: &str, text: &str| seal_endpoint_column(at_rest, column, id, text);
    sql.bind(e.app_id.as_str())
        .bind(e.id.as_str())
        .bind(e.uid.as_ref().map(|u| u.as_str()))
        .bind(e.url.as_str())
        .bind(&e.description)
        .bind(e.disabled)
        .bind(e.rate_limit.map(i64::from))
        .bind(opt_to_json(e.subscription.event_types.as_ref()))
        .bind(opt_to_json(e.subscription.channels.as_ref()))
        .bind(to_json(&e.metadata))
        .bind(seal("headers", &to_json(&e.headers)))
        .bind(seal("secret", &e.secret.expose()))
        .bind(seal(
            "previous_secrets",
            &previous_secrets_json(&e.previous_secrets),
        ))
        .bind(e.updated_at)
        .bind(signature_json(&e.signature))
        .bind(e.auto_disable_after_failures.map(i64::from))
        .bind(
            e.auto_disable_after_secs
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        )
        .bind(retry_policy_json(e.retry_policy.as_deref()))
        .bind(e.ordering.code())
}
