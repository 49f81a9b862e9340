//! Replays, recoveries and dead-letter requeues, as background tasks (see [`crate::tasks`]):
//! `endpoint.bulk-replay` sends an endpoint's messages again, `endpoint.replay` sends it the
//! messages it never had, `endpoint.recover` queues failed deliveries again (an endpoint's,
//! or an application's dead letters matching a filter).
//!
//! A task's cursor is a [`ReplayCursor`]: what it was asked for, and the key its next step
//! starts after. Each step is one short transaction of at most [`BATCH`] deliveries (the
//! store's [`ReplayStore`]); its progress is `data.messagesSent`, the deliveries queued so
//! far, as the contract's examples show. Queued deliveries go through the normal engine as
//! manual attempts (`triggerType` 1), as a resend does.
//!
//! [`ReplayStore`]: crate::store::ReplayStore

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::{
    AppId, BackgroundTask, Channel, DeliveryStatus, EndpointId, EventTypeName, MessageId, TaskKind,
    TaskStatus, Timestamp,
};
use crate::retention::BATCH;
use crate::store::{FailedFilter, MessageFilter, ReplayFilter, Store, StoreError};

/// The data key every replay kind counts in.
pub const SENT: &str = "messagesSent";

/// What a replay task was asked for, and where it stands; stored as its cursor (JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayCursor {
    /// The endpoint replayed to (a requeue of dead letters may name none).
    pub endpoint: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Bulk replay: delivery status codes.
    #[serde(default)]
    pub statuses: Vec<i64>,
    pub status_code_class: Option<u16>,
    pub event_types: Option<Vec<String>>,
    pub channel: Option<String>,
    /// The key the last step got to (a message id, or a delivery number for requeues).
    pub after: Option<String>,
}

impl ReplayCursor {
    pub fn bulk_replay(endpoint: &EndpointId, filter: &ReplayFilter) -> Self {
        Self {
            endpoint: Some(endpoint.to_string()),
            since: Some(filter.since),
            until: filter.until,
            statuses: filter.statuses.iter().map(|s| s.code()).collect(),
            status_code_class: filter.status_code_class,
            event_types: names(filter.messages.event_types.as_ref()),
            channel: filter
                .messages
                .channel
                .as_ref()
                .map(|c| c.as_str().to_owned()),
            after: None,
        }
    }

    pub fn replay_missing(
        endpoint: &EndpointId,
        since: Timestamp,
        until: Option<Timestamp>,
    ) -> Self {
        Self {
            endpoint: Some(endpoint.to_string()),
            since: Some(since),
            until,
            ..Self::default()
        }
    }

    pub fn requeue(filter: &FailedFilter) -> Self {
        Self {
            endpoint: filter.endpoint.as_ref().map(|e| e.to_string()),
            since: filter.since,
            until: filter.until,
            event_types: names(filter.event_types.as_ref()),
            ..Self::default()
        }
    }

    fn endpoint(&self) -> Result<EndpointId, StoreError> {
        self.endpoint
            .clone()
            .map(EndpointId::from_stored)
            .ok_or_else(|| corrupt("a replay without an endpoint"))
    }

    fn since(&self) -> Result<Timestamp, StoreError> {
        self.since
            .ok_or_else(|| corrupt("a replay without `since`"))
    }

    fn event_types(&self) -> Option<BTreeSet<EventTypeName>> {
        self.event_types.as_ref().map(|types| {
            types
                .iter()
                .cloned()
                .map(EventTypeName::from_stored)
                .collect()
        })
    }

    fn replay_filter(&self) -> Result<ReplayFilter, StoreError> {
        let statuses = self
            .statuses
            .iter()
            .map(|&code| {
                DeliveryStatus::from_code(code)
                    .ok_or_else(|| corrupt(&format!("a replay of status {code}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(ReplayFilter {
            since: self.since()?,
            until: self.until,
            statuses,
            status_code_class: self.status_code_class,
            messages: MessageFilter {
                event_types: self.event_types(),
                channel: self.channel.clone().map(Channel::from_stored),
                ..MessageFilter::default()
            },
        })
    }

    fn failed_filter(&self) -> FailedFilter {
        FailedFilter {
            endpoint: self.endpoint.clone().map(EndpointId::from_stored),
            event_types: self.event_types(),
            since: self.since,
            until: self.until,
        }
    }
}

fn names(set: Option<&BTreeSet<EventTypeName>>) -> Option<Vec<String>> {
    set.map(|s| s.iter().map(|t| t.as_str().to_owned()).collect())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("background task: {what}"))
}

/// Stores a new replay task of `kind` for `app`, claimable at once.
pub async fn start(
    store: &dyn Store,
    kind: TaskKind,
    app: &AppId,
    cursor: &ReplayCursor,
) -> Result<BackgroundTask, StoreError> {
    let cursor = serde_json::to_string(cursor)
        .map_err(|e| corrupt(&format!("cannot write a cursor: {e}")))?;
    store
        .insert_task(
            kind,
            Some(app),
            crate::tasks::initial_data(kind),
            Some(cursor),
        )
        .await
}

/// Runs one step of a replay task of any kind, at `now`, and records its progress in
/// `task` (not yet saved); returns how many deliveries it queued.
pub async fn step(
    store: &dyn Store,
    task: &mut BackgroundTask,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let mut cursor: ReplayCursor = match &task.cursor {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| corrupt(&format!("an unreadable cursor: {e}")))?,
        None => return Err(corrupt("a replay without its parameters")),
    };
    let after = cursor.after.clone();
    let step = match task.kind {
        TaskKind::BulkReplay => {
            let after = after.map(MessageId::from_stored);
            store
                .replay_step(
                    &cursor.endpoint()?,
                    &cursor.replay_filter()?,
                    after.as_ref(),
                    BATCH,
                    now,
                )
                .await?
        }
        TaskKind::ReplayMissing => {
            let after = after.map(MessageId::from_stored);
            store
                .replay_missing_step(
                    &cursor.endpoint()?,
                    cursor.since()?,
                    cursor.until,
                    after.as_ref(),
                    BATCH,
                    now,
                )
                .await?
        }
        TaskKind::Recover => {
            let app = task
                .app_id
                .clone()
                .ok_or_else(|| corrupt("a recovery without an application"))?;
            let after = after
                .map(|a| a.parse::<i64>())
                .transpose()
                .map_err(|e| corrupt(&format!("a recovery cursor: {e}")))?;
            store
                .requeue_failed_step(&app, &cursor.failed_filter(), after, BATCH, now)
                .await?
        }
        TaskKind::PurgeContent => return Err(corrupt("a purge is not a replay")),
    };
    let sent = task.data.get(SENT).and_then(Value::as_u64).unwrap_or(0) + step.sent;
    task.data.insert(SENT.into(), json!(sent));
    match step.last {
        Some(last) => cursor.after = Some(last),
        None => task.status = TaskStatus::Finished,
    }
    task.cursor = Some(
        serde_json::to_string(&cursor)
            .map_err(|e| corrupt(&format!("cannot write a cursor: {e}")))?,
    );
    Ok(step.sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_replay_cursor_round_trips_its_filter() {
        let filter = ReplayFilter {
            since: crate::domain::time::from_micros(1_000),
            until: Some(crate::domain::time::from_micros(2_000)),
            statuses: vec![DeliveryStatus::Success, DeliveryStatus::Fail],
            status_code_class: Some(500),
            messages: MessageFilter {
                event_types: Some(BTreeSet::from([EventTypeName::from_stored("a.b".into())])),
                channel: Some(Channel::from_stored("c".into())),
                ..MessageFilter::default()
            },
        };
        let endpoint = EndpointId::from_stored("ep_1".into());
        let cursor = ReplayCursor::bulk_replay(&endpoint, &filter);
        let read: ReplayCursor =
            serde_json::from_str(&serde_json::to_string(&cursor).unwrap()).unwrap();
        assert_eq!(read, cursor);
        let back = read.replay_filter().unwrap();
        assert_eq!(back.statuses, filter.statuses);
        assert_eq!(back.status_code_class, Some(500));
        assert_eq!(back.messages.event_types, filter.messages.event_types);
        assert_eq!(back.messages.channel, filter.messages.channel);
        assert_eq!((back.since, back.until), (filter.since, filter.until));
    }

    #[test]
    fn a_cursor_with_an_unknown_status_is_refused() {
        let cursor = ReplayCursor {
            since: Some(crate::domain::time::from_micros(0)),
            statuses: vec![9],
            ..ReplayCursor::default()
        };
        assert!(cursor.replay_filter().is_err());
    }
}
