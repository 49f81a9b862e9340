//! Freshness monitors: an application (or one of its event types) is expected to produce a
//! message at least every `max_silence`, or before each time of a cron `deadline`; a monitor
//! says whether it does (`crate::monitors`).

use std::str::FromStr;

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

/// A cron schedule (UTC) of times by which a message must have come: at each time, at least
/// one message since the time before it.
#[derive(Debug, Clone)]
pub struct Deadline {
    text: String,
    cron: Box<croner::Cron>,
}

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Deadline {
    /// Five fields (minute hour day-of-month month day-of-week, as cron has them), or six with
    /// seconds first; in UTC. A pattern that never comes (`0 0 30 2 *`) is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cron = croner::Cron::from_str(text.trim()).map_err(|e| {
            format!("is not a cron expression ({e}); e.g. \"0 3 * * *\" is 03:00 UTC daily")
        })?;
        let deadline = Self {
            text: text.trim().to_owned(),
            cron: Box::new(cron),
        };
        if deadline.next(super::time::now(), true).is_none() {
            return Err("never comes".into());
        }
        Ok(deadline)
    }

    /// Reads back a stored pattern (which [`Deadline::parse`] accepted).
    pub fn from_stored(text: &str) -> Result<Self, String> {
        croner::Cron::from_str(text)
            .map(|cron| Self {
                text: text.to_owned(),
                cron: Box::new(cron),
            })
            .map_err(|e| e.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time of the schedule after `t` (or at `t`, when `inclusive`).
    pub fn next(&self, t: Timestamp, inclusive: bool) -> Option<Timestamp> {
        use chrono::SubsecRound;
        // The schedule's times are whole seconds (the parser would keep `t`'s fraction).
        let whole = t.trunc_subsecs(0);
        self.cron
            .find_next_occurrence(&whole, inclusive && whole == t)
            .ok()
    }
}

/// What a monitor expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Expectation {
    /// A message at most this long after the one before.
    Silence(TimeDelta),
    /// A message before each time of the schedule, since the time before it.
    Deadline(Deadline),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub id: MonitorId,
    pub name: String,
    pub description: String,
    pub app_id: AppId,
    /// The ingest source watched, when the monitor watches one (`app_id` is then the
    /// source's internal application).
    pub source_id: Option<super::SourceId>,
    /// The event type watched; `None`: any of the application's messages.
    pub event_type: Option<EventTypeName>,
    pub expect: Expectation,
    pub state: MonitorState,
    /// The newest matching message seen (its creation time).
    pub last_seen_at: Option<Timestamp>,
    /// When the state last changed (the creation time at first).
    pub state_since: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Monitor {
    /// When the monitor goes stale if nothing more comes, counted from the newest message
    /// seen, or from its creation when it has seen none: `max_silence` after it; or, with a
    /// deadline, at the deadline after the one that message counts for (the first at or
    /// after it). A new monitor is so never stale at the first deadline after its creation.
    pub fn due_at(&self) -> Timestamp {
        let since = self
            .last_seen_at
            .unwrap_or(self.created_at)
            .max(self.created_at);
        match &self.expect {
            Expectation::Silence(silence) => since + *silence,
            Expectation::Deadline(deadline) => deadline
                .next(since, true)
                .and_then(|first| deadline.next(first, false))
                // A schedule with no time left (past its last year) never comes due.
                .unwrap_or(since + TimeDelta::days(36_500)),
        }
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
            source_id: None,
            event_type: None,
            expect: Expectation::Silence(TimeDelta::hours(25)),
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

    #[test]
    fn a_deadline_monitor_is_due_at_the_deadline_after_the_one_its_last_message_met() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let deadline = Deadline::parse("0 3 * * *").unwrap();
        let mut m = Monitor {
            id: MonitorId::generate(),
            name: "crawl".into(),
            description: String::new(),
            app_id: AppId::generate(),
            source_id: None,
            event_type: None,
            expect: Expectation::Deadline(deadline),
            state: MonitorState::Ok,
            last_seen_at: None,
            state_since: at("2026-12-01T02:59:00Z"),
            created_at: at("2026-12-01T02:59:00Z"),
            updated_at: at("2026-12-01T02:59:00Z"),
        };
        // Created a minute before a deadline: that one is not held against it.
        assert_eq!(m.due_at(), at("2026-12-02T03:00:00Z"));
        // A run at 02:10 meets the 03:00 deadline of that day: due at the next one.
        m.last_seen_at = Some(at("2026-12-02T02:10:00Z"));
        assert_eq!(m.due_at(), at("2026-12-03T03:00:00Z"));
        // A run exactly at 03:00 still meets that deadline; one at 03:00:00.5 meets the next.
        m.last_seen_at = Some(at("2026-12-02T03:00:00.5Z"));
        assert_eq!(m.due_at(), at("2026-12-04T03:00:00Z"));
        m.last_seen_at = Some(at("2026-12-02T03:00:00Z"));
        assert_eq!(m.due_at(), at("2026-12-03T03:00:00Z"));
        m.last_seen_at = Some(at("2026-12-02T03:01:00Z"));
        assert_eq!(m.due_at(), at("2026-12-04T03:00:00Z"));
        assert!(Deadline::parse("0 0 30 2 *").is_err());
        assert!(Deadline::parse("61 2 * * *").is_err());
        assert!(Deadline::parse("daily").is_err());
    }
}
