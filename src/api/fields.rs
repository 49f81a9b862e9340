//! Parsing of request fields into domain types, with 422s that name the field.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer};

use super::ApiState;
use super::error::ApiError;
use crate::domain::{
    AppKey, Channel, EndpointKey, EventTypeName, MessageKey, NameError, RetryPolicy,
    RetryPolicySpec, Uid,
};

/// For PATCH fields: absent → `None` (leave as is), `null` → `Some(None)` (clear),
/// a value → `Some(Some(v))`. Use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// For fields with a default: absent or `null` → the default, as the Svix server reads a
/// field its document gives a default. Use with `#[serde(default, deserialize_with =
/// "null_as_default")]`, and `#[schema(nullable)]` so the document says so.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A whole number, also when written with a zero fraction (`5.0`), which JSON Schema counts
/// as an integer too. Out of `T`'s range, or with a fraction, it is refused.
struct Whole<T>(T);

impl<'de, T: TryFrom<i64>> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let number = serde_json::Number::deserialize(deserializer)?;
        let whole = match (number.as_i64(), number.as_f64()) {
            (Some(n), _) => Some(n),
            // Exact: |f| < 2^63 and no fraction.
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
            _ => None,
        };
        whole
            .and_then(|n| T::try_from(n).ok())
            .map(Whole)
            .ok_or_else(|| D::Error::custom(format!("{number} is not a whole number in range")))
    }
}

/// An optional whole number (see [`Whole`]). Use with `#[serde(default, deserialize_with =
/// "whole")]`.
pub fn whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    Option::<Whole<T>>::deserialize(deserializer).map(|n| n.map(|Whole(n)| n))
}

/// A PATCH field holding a whole number: see [`nullable`] and [`Whole`].
pub fn nullable_whole<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    whole(deserializer).map(Some)
}

pub fn body_error(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(&["body", field], e.to_string())
}

fn path_error(param: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(&["path", param], e.to_string())
}

pub fn app_key(s: &str) -> Result<AppKey, ApiError> {
    AppKey::parse(s).map_err(|e| path_error("app_id", e))
}

pub fn endpoint_key(s: &str) -> Result<EndpointKey, ApiError> {
    EndpointKey::parse(s).map_err(|e| path_error("endpoint_id", e))
}

pub fn message_key(s: &str) -> Result<MessageKey, ApiError> {
    MessageKey::parse(s).map_err(|e| path_error("msg_id", e))
}

pub fn event_type_path(s: &str) -> Result<EventTypeName, ApiError> {
    EventTypeName::parse(s).map_err(|e| path_error("event_type_name", e))
}

/// A uid from a body. `id_shaped` tells whether the value would be read as an id in a path,
/// which would make the resource unreachable by its uid.
pub fn uid(
    field: &str,
    value: Option<String>,
    id_shaped: impl Fn(&str) -> bool,
) -> Result<Option<Uid>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    if id_shaped(&value) {
        return Err(body_error(
            field,
            "must not have the shape of a generated id",
        ));
    }
    Uid::parse(&value)
        .map(Some)
        .map_err(|e| body_error(field, e))
}

/// A string of at least one character (the contract's `minLength: 1`; blanks count).
pub fn non_empty(field: &str, value: String) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(body_error(field, "must not be empty"));
    }
    Ok(value)
}

/// A list of names; an empty list means "no filter", like an absent one.
pub fn name_set<T: Ord>(
    field: &str,
    values: Option<Vec<String>>,
    max_items: usize,
    parse: fn(&str) -> Result<T, NameError>,
) -> Result<Option<BTreeSet<T>>, ApiError> {
    let Some(values) = values.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if values.len() > max_items {
        return Err(body_error(
            field,
            format!("may hold at most {max_items} items"),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            parse(v).map_err(|e| ApiError::invalid(&["body", field, &i.to_string()], e.to_string()))
        })
        .collect::<Result<BTreeSet<T>, ApiError>>()
        .map(Some)
}

pub fn event_types(
    field: &str,
    values: Option<Vec<String>>,
) -> Result<Option<BTreeSet<EventTypeName>>, ApiError> {
    name_set(field, values, usize::MAX, EventTypeName::parse)
}

pub fn channels(
    field: &str,
    values: Option<Vec<String>>,
    max: usize,
) -> Result<Option<BTreeSet<Channel>>, ApiError> {
    name_set(field, values, max, Channel::parse)
}

/// Splits query list values: `a,b` and repeated keys both work.
pub fn query_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

const NOT_A_TIME: &str = "must be an RFC 3339 date-time, such as 2024-01-02T03:04:05Z";

/// An RFC 3339 time; without an offset it is taken as UTC. Kept to the microsecond, as
/// stored.
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc).trunc_subsecs(6));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dt%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
    .map(|t| t.and_utc().trunc_subsecs(6))
}

/// An RFC 3339 time from a query parameter; without an offset it is taken as UTC.
pub fn query_time(param: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    parse_time(value)
        .map(Some)
        .ok_or_else(|| ApiError::invalid(&["query", param], NOT_A_TIME))
}

/// An RFC 3339 time from a body field; without an offset it is taken as UTC.
pub fn body_time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| parse_time(v).ok_or_else(|| body_error(field, NOT_A_TIME)))
        .transpose()
}

/// A retry policy from the body's `field` (null or absent: none), checked against the
/// server's `max_request_timeout_secs`; a 422 names the field under the policy that is wrong
/// (`["body", "retryPolicy", "schedule", "2"]`).
pub fn retry_policy(
    state: &ApiState,
    spec: Option<RetryPolicySpec>,
    field: &str,
) -> Result<Option<RetryPolicy>, ApiError> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    RetryPolicy::parse(&spec, state.settings.max_request_timeout)
        .map(Some)
        .map_err(|e| {
            let mut loc = vec!["body", field];
            loc.extend(e.field.iter().map(String::as_str));
            ApiError::invalid(&loc, e.message)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_times_accept_offsets_and_naive_utc() {
        let z = query_time("t", Some("2024-01-02T03:04:05Z"))
            .unwrap()
            .unwrap();
        let off = query_time("t", Some("2024-01-02T05:04:05+02:00"))
            .unwrap()
            .unwrap();
        let naive = query_time("t", Some("2024-01-02T03:04:05"))
            .unwrap()
            .unwrap();
        let micros = query_time("t", Some("2024-01-02T03:04:05.123000+00:00"))
            .unwrap()
            .unwrap();
        assert_eq!(z, off);
        assert_eq!(z, naive);
        assert_eq!(micros.timestamp_subsec_micros(), 123_000);
        assert!(query_time("t", Some("yesterday")).is_err());
        assert!(body_time("t", Some("")).is_err());
        assert_eq!(
            body_time("t", Some("2024-01-02t03:04:05")).unwrap(),
            Some(z)
        );
        let nanos = body_time("t", Some("2024-01-02T03:04:05.123456789Z"))
            .unwrap()
            .unwrap();
        assert_eq!(nanos.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(query_time("t", None).unwrap(), None);
    }

    #[test]
    fn query_lists_split_on_commas_and_repeats() {
        assert_eq!(
            query_list(&["a,b".into(), "c".into(), "".into()]),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn id_shaped_uids_are_refused() {
        let id = crate::domain::AppId::generate();
        let shaped = |s: &str| crate::domain::AppId::parse(s).is_some();
        assert!(uid("uid", Some(id.to_string()), shaped).is_err());
        assert!(uid("uid", Some("my-app".into()), shaped).unwrap().is_some());
        assert!(uid("uid", Some("bad uid".into()), shaped).is_err());
    }
}
