//! Change detection: entity types (`entity_type`), entities' current states (`entity`),
//! their histories (`entity_history`) and the `entity_event` outbox (see
//! [`EntityStore::apply_snapshot`] and `crate::entities`).

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::operational::{Outbox, take_outbox};
use crate::domain::entity::{self, EntityType, EntityVersion, FiredEvent, Rule};
use crate::domain::time::from_micros;
use crate::domain::{AppId, EntityKey, EntityTypeName};
use crate::store::engine::{Engine, EngineConn};
use crate::store::page::push_page;
use crate::store::rows::StoredRow;
use crate::store::sql::{Conn, Sql};
use crate::store::{Applied, EntityStore, OutboxBatch, PageQuery, Result, Snapshot, StoreError};

const TYPE_COLUMNS: &str = "name, description, rules, created_at, updated_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} is not what hookd writes"))
}

fn entity_type(row: &impl StoredRow) -> Result<EntityType> {
    let rules: Value =
        serde_json::from_str(&row.text("rules")?).map_err(|_| corrupt("entity_type.rules"))?;
    let rules = rules
        .as_array()
        .ok_or_else(|| corrupt("entity_type.rules"))?
        .iter()
        .map(|r| Rule::from_json(r).ok_or_else(|| corrupt("entity_type.rules")))
        .collect::<Result<Vec<_>>>()?;
    Ok(EntityType {
        name: EntityTypeName::from_stored(row.text("name")?),
        description: row.opt_text("description")?,
        rules,
        created_at: from_micros(row.int("created_at")?),
        updated_at: from_micros(row.int("updated_at")?),
    })
}

fn state(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(corrupt("entity state")),
    }
}

fn events(text: &str) -> Result<Vec<FiredEvent>> {
    let events: Value = serde_json::from_str(text).map_err(|_| corrupt("entity events"))?;
    events
        .as_array()
        .ok_or_else(|| corrupt("entity events"))?
        .iter()
        .map(|e| FiredEvent::from_json(e).ok_or_else(|| corrupt("entity events")))
        .collect()
}

fn version(
    row: &impl StoredRow,
    snapshot: (&AppId, &EntityTypeName, &EntityKey),
    fired: Vec<FiredEvent>,
) -> Result<EntityVersion> {
    let (app, ty, key) = snapshot;
    Ok(EntityVersion {
        app_id: app.clone(),
        entity_type: ty.clone(),
        key: key.clone(),
        version: row.int("version")?,
        state: state(&row.text("state")?)?,
        observed_at: from_micros(row.int("observed_at")?),
        events: fired,
    })
}

/// The message payload of `event`, fired by the snapshot `snap`.
fn payload(snap: &Snapshot, event: &FiredEvent) -> String {
    json!({
        "key": snap.key.as_str(),
        "entityType": snap.entity_type.as_str(),
        "field": event.field,
        "old": event.old,
        "new": event.new,
        "changePct": event.change_pct,
        "observedAt": snap.observed_at,
        "entity": snap.state,
    })
    .to_string()
}

#[async_trait]
impl<E: Engine> EntityStore for E {
    async fn put_entity_type(&self, ty: EntityType) -> Result<EntityType> {
        let rules = Value::Array(ty.rules.iter().map(Rule::to_json).collect()).to_string();
        let upsert = Sql::new(format!(
            "INSERT INTO entity_type ({TYPE_COLUMNS}) VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (name) DO UPDATE SET description = $2, rules = $3, updated_at = $4
             RETURNING {TYPE_COLUMNS}"
        ))
        .bind(ty.name.as_str())
        .bind(ty.description.as_deref())
        .bind(rules)
        .bind(ty.updated_at);
        let row = self.writes().acquire().await?.row(&upsert).await?;
        entity_type(&row.ok_or(StoreError::NotFound)?)
    }

    async fn get_entity_type(&self, name: &EntityTypeName) -> Result<Option<EntityType>> {
        let get = Sql::new(format!(
            "SELECT {TYPE_COLUMNS} FROM entity_type WHERE name = $1"
        ))
        .bind(name.as_str());
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref().map(entity_type).transpose()
    }

    async fn list_entity_types(&self, page: &PageQuery) -> Result<Vec<EntityType>> {
        let mut list = Sql::new(format!(
            "SELECT {TYPE_COLUMNS} FROM entity_type WHERE 1 = 1"
        ));
        push_page(&mut list, "name", page);
        let rows = self.reads().acquire().await?.rows(&list).await?;
        rows.iter().map(entity_type).collect()
    }

    async fn delete_entity_type(&self, name: &EntityTypeName) -> Result<bool> {
        let delete = Sql::new("DELETE FROM entity_type WHERE name = $1").bind(name.as_str());
        Ok(self.writes().acquire().await?.exec(&delete).await? > 0)
    }

    async fn apply_snapshots(&self, batch: Vec<Snapshot>) -> Result<Vec<Result<Applied>>> {
        // Keys are locked in one order, so two nodes' batches never wait on each other in a
        // cycle (PostgreSQL); the sort is stable, so snapshots of one key keep their order.
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |s: &Snapshot| (s.app_id.clone(), s.entity_type.clone(), s.key.clone());
            key(&batch[a]).cmp(&key(&batch[b]))
        });
        let mut results: Vec<Option<Result<Applied>>> = batch.iter().map(|_| None).collect();
        let mut rules = HashMap::new();
        let mut tx = self.writes().begin().await?;
        for i in order {
            // A snapshot of an application deleted meanwhile fails alone: its first write
            // (the key's row) is refused, and undone with a savepoint where the engine
            // would otherwise abort the transaction.
            let savepoint = E::FAILED_STATEMENT_ABORTS;
            if savepoint {
                tx.exec(&Sql::new("SAVEPOINT snapshot")).await?;
            }
            match apply_one::<E>(&mut tx, &batch[i], &mut rules).await {
                Ok(applied) => results[i] = Some(Ok(applied)),
                Err(StoreError::NotFound) => {
                    if savepoint {
                        tx.exec(&Sql::new("ROLLBACK TO SAVEPOINT snapshot")).await?;
                    }
                    results[i] = Some(Err(StoreError::NotFound));
                }
                Err(e) => return Err(e),
            }
            if savepoint {
                tx.exec(&Sql::new("RELEASE SAVEPOINT snapshot")).await?;
            }
        }
        tx.commit().await?;
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(StoreError::NotFound)))
            .collect())
    }

    async fn get_entity(
        &self,
        app: &AppId,
        entity_type: &EntityTypeName,
        key: &EntityKey,
    ) -> Result<Option<EntityVersion>> {
        let get = Sql::new(
            "SELECT version, state, observed_at FROM entity
             WHERE app_id = $1 AND entity_type = $2 AND key = $3 AND version > 0",
        )
        .bind(app.as_str())
        .bind(entity_type.as_str())
        .bind(key.as_str());
        let row = self.reads().acquire().await?.row(&get).await?;
        row.map(|row| version(&row, (app, entity_type, key), Vec::new()))
            .transpose()
    }

    async fn list_entity_history(
        &self,
        app: &AppId,
        entity_type: &EntityTypeName,
        key: &EntityKey,
        page: &PageQuery,
    ) -> Result<Vec<EntityVersion>> {
        let mut list = Sql::new(
            "SELECT version, state, events, observed_at FROM entity_history
             WHERE app_id = $1 AND entity_type = $2 AND key = $3",
        )
        .bind(app.as_str())
        .bind(entity_type.as_str())
        .bind(key.as_str());
        // The keys are numbers: compared as numbers, not as text.
        if let Some((bound, greater)) = page.key_bound() {
            let bound: i64 = bound.parse().unwrap_or(0);
            list.push(if greater {
                " AND version > "
            } else {
                " AND version < "
            })
            .push_bind(bound);
        }
        list.push(if page.scans_ascending() {
            " ORDER BY version ASC LIMIT "
        } else {
            " ORDER BY version DESC LIMIT "
        })
        .push_bind(page.fetch());
        let rows = self.reads().acquire().await?.rows(&list).await?;
        rows.iter()
            .map(|row| {
                let fired = events(&row.text("events")?)?;
                version(row, (app, entity_type, key), fired)
            })
            .collect()
    }

    async fn take_entity_events(&self, limit: usize) -> Result<Option<Box<dyn OutboxBatch>>> {
        take_outbox(self, Outbox::ENTITY, limit).await
    }
}

/// Applies one snapshot in the batch's transaction (see
/// [`EntityStore::apply_snapshots`]); `rules` caches each entity type's rules for the batch.
async fn apply_one<E: Engine>(
    tx: &mut EngineConn<E>,
    snap: &Snapshot,
    rules: &mut HashMap<EntityTypeName, Vec<Rule>>,
) -> Result<Applied> {
    let id = (&snap.app_id, &snap.entity_type, &snap.key);
    // One statement inserts the key's row if it has none and locks it either way (an
    // upsert's update locks the row as `FOR UPDATE` would, PostgreSQL; and on SQLite it
    // takes the write lock before anything is read): concurrent snapshots of a key, first
    // ones included, take turns on that row. Version 0 and no state: no snapshot yet.
    let current = Sql::new(
        "INSERT INTO entity (app_id, entity_type, key, version) VALUES ($1, $2, $3, 0)
         ON CONFLICT (app_id, entity_type, key) DO UPDATE SET version = entity.version
         RETURNING version, state, observed_at",
    )
    .bind(snap.app_id.as_str())
    .bind(snap.entity_type.as_str())
    .bind(snap.key.as_str());
    let row = match tx.row(&current).await {
        Ok(row) => row.ok_or(StoreError::NotFound)?,
        Err(e) if is_foreign_key(&e) => return Err(StoreError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let old_version = row.int("version")?;
    let old = row.opt_text("state")?.as_deref().map(state).transpose()?;
    if old.as_ref() == Some(&snap.state) {
        return Ok(Applied {
            current: version(&row, id, Vec::new())?,
            changed: false,
        });
    }
    if !rules.contains_key(&snap.entity_type) {
        let read = Sql::new(format!(
            "SELECT {TYPE_COLUMNS} FROM entity_type WHERE name = $1"
        ))
        .bind(snap.entity_type.as_str());
        let found = match tx.row(&read).await? {
            Some(row) => entity_type(&row)?.rules,
            None => Vec::new(),
        };
        rules.insert(snap.entity_type.clone(), found);
    }
    let fired = entity::evaluate(&rules[&snap.entity_type], old.as_ref(), &snap.state);
    let new_version = old_version + 1;
    let state_text = Value::Object(snap.state.clone()).to_string();
    let events_text = Value::Array(fired.iter().map(FiredEvent::to_json).collect()).to_string();
    let update = Sql::new(
        "UPDATE entity SET version = $4, state = $5, observed_at = $6
         WHERE app_id = $1 AND entity_type = $2 AND key = $3",
    )
    .bind(snap.app_id.as_str())
    .bind(snap.entity_type.as_str())
    .bind(snap.key.as_str())
    .bind(new_version)
    .bind(state_text.clone())
    .bind(snap.observed_at);
    tx.exec(&update).await?;
    let history = Sql::new(
        "INSERT INTO entity_history (app_id, entity_type, key, version, state, events,
         observed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(snap.app_id.as_str())
    .bind(snap.entity_type.as_str())
    .bind(snap.key.as_str())
    .bind(new_version)
    .bind(state_text)
    .bind(events_text)
    .bind(snap.observed_at);
    tx.exec(&history).await?;
    for event in &fired {
        let outbox = Sql::new(
            "INSERT INTO entity_event (app_id, event_type, payload, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(snap.app_id.as_str())
        .bind(event.event_type.as_str())
        .bind(payload(snap, event))
        .bind(snap.observed_at);
        tx.exec(&outbox).await?;
    }
    Ok(Applied {
        current: EntityVersion {
            app_id: snap.app_id.clone(),
            entity_type: snap.entity_type.clone(),
            key: snap.key.clone(),
            version: new_version,
            state: snap.state.clone(),
            observed_at: snap.observed_at,
            events: fired,
        },
        changed: true,
    })
}

fn is_foreign_key(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}
