//! Background tasks: work started by an API call that outlives the request (purging an
//! application's payloads, replays, recoveries, dead-letter requeues), run in short steps
//! by any node.

use super::{AppId, TaskId, Timestamp};

/// What a task does: the contract's `BackgroundTaskType` names for the kinds hookd runs.
/// A kind added here needs its steps in `tasks` and nothing in the store: a task's state is
/// its `data` (shown to clients) and its `cursor` (where it goes on from), both opaque text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// `POST /api/v1/app/{app}/msg/expunge-all-contents`: remove every payload of an
    /// application. `data`: `{"messagesPurged": n}`.
    PurgeContent,
    /// `POST …/endpoint/{ep}/bulk-replay`: send the endpoint's messages of a time range
    /// again. `data`: `{"messagesSent": n}`.
    BulkReplay,
    /// `POST …/endpoint/{ep}/replay-missing`: send the messages of a time range that the
    /// endpoint never had a delivery for. `data`: `{"messagesSent": n}`.
    ReplayMissing,
    /// `POST …/endpoint/{ep}/recover`, and `POST …/dead-letter/requeue` with filters:
    /// re-queue failed deliveries. `data`: `{"messagesSent": n}`.
    Recover,
}

impl TaskKind {
    pub const ALL: [TaskKind; 4] = [
        TaskKind::PurgeContent,
        TaskKind::BulkReplay,
        TaskKind::ReplayMissing,
        TaskKind::Recover,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::PurgeContent => "application.purge_content",
            TaskKind::BulkReplay => "endpoint.bulk-replay",
            TaskKind::ReplayMissing => "endpoint.replay",
            TaskKind::Recover => "endpoint.recover",
        }
    }

    pub fn parse(s: &str) -> Option<TaskKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a task stands; the contract's `BackgroundTaskStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Running = 0,
    Finished = 1,
    Failed = 2,
}

impl TaskStatus {
    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(code: i64) -> Option<TaskStatus> {
        match code {
            0 => Some(TaskStatus::Running),
            1 => Some(TaskStatus::Finished),
            2 => Some(TaskStatus::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Finished => "finished",
            TaskStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        [
            TaskStatus::Running,
            TaskStatus::Finished,
            TaskStatus::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A background task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundTask {
    pub id: TaskId,
    pub kind: TaskKind,
    pub status: TaskStatus,
    /// The application the task works on, if it works on one.
    pub app_id: Option<AppId>,
    /// A JSON object: the task's progress and results, as the API shows them.
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Where the next step starts (the kind's own format); `None` before the first step.
    pub cursor: Option<String>,
    /// Until when the node running it holds it; a running task whose lease has run out is
    /// taken over by any node. Also the fencing token of its progress updates.
    pub lease_until: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_round_trip_their_names() {
        for kind in TaskKind::ALL {
            assert_eq!(TaskKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TaskKind::parse("application.purge"), None);
        for status in [
            TaskStatus::Running,
            TaskStatus::Finished,
            TaskStatus::Failed,
        ] {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
            assert_eq!(TaskStatus::from_code(status.code()), Some(status));
        }
        assert_eq!(TaskStatus::from_code(7), None);
    }
}
