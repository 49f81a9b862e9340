//! Timestamps: UTC, microsecond precision, stored as integer microseconds since the epoch.

use chrono::{DateTime, SubsecRound, Utc};

pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to what the store keeps, so that a value written and read
/// back compares equal to the one in memory.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(6)
}

pub fn to_micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> Timestamp {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        let t = now();
        assert_eq!(from_micros(to_micros(t)), t);
    }
}
