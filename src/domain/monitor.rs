//! Freshness monitors: an application (or one of its event types) is expected to produce a
//! message at least every `max_silence`; a monitor says whether it does (`crate::monitors`).

use chrono::TimeDelta;

use super::{AppId, EventTypeName, MonitorId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorState {
    /// A message came within `max_silence` (or the monitor is younger than that).
    Ok,
    /// Nothing came for longer than `max_silence`.
    Stale,
}

impl MonitorState {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorState::Ok => "ok",
            MonitorState::Stale => "stale",
        }
    }

    pub fn to_stored(self) -> i64 {
        match self {
            MonitorState::Ok => 0,
            MonitorState::Stale => 1,
        }
    }

    pub fn from_stored(v: i64) -> Option<Self> {
        match v {
            0 => Some(MonitorState::Ok),
            1 => Some(MonitorState::Stale),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub id: MonitorId,
    pub name: String,
    pub description: String,
    pub app_id: AppId,
    /// The event type watched; `None`: any of the application's messages.
    pub event_type: Option<EventTypeName>,
    pub max_silence: TimeDelta,
    pub state: MonitorState,
    /// The newest matching message seen (its creation time).
    pub last_seen_at: Option<Timestamp>,
    /// When the state last changed (the creation time at first).
    pub state_since: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Monitor {
    /// When the monitor goes stale if nothing more comes: `max_silence` after the newest
    /// message seen, or after its creation when it has seen none.
    pub fn due_at(&self) -> Timestamp {
        self.last_seen_at
            .unwrap_or(self.created_at)
            .max(self.created_at)
            + self.max_silence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitor_is_due_max_silence_after_what_it_saw_last() {
        let created = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let mut m = Monitor {
            id: MonitorId::generate(),
            name: "scraper".into(),
            description: String::new(),
            app_id: AppId::generate(),
            event_type: None,
            max_silence: TimeDelta::hours(25),
            state: MonitorState::Ok,
            last_seen_at: None,
            state_since: created,
            created_at: created,
            updated_at: created,
        };
        assert_eq!(m.due_at(), created + TimeDelta::hours(25));
        m.last_seen_at = Some(created + TimeDelta::hours(3));
        assert_eq!(m.due_at(), created + TimeDelta::hours(28));
        // A message older than the monitor does not move its start back.
        m.last_seen_at = Some(created - TimeDelta::hours(3));
        assert_eq!(m.due_at(), created + TimeDelta::hours(25));
    }
}
