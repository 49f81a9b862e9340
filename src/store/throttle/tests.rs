use std::collections::HashMap;

use chrono::TimeDelta;

use super::*;
use crate::domain::time::now;

fn limits(total: usize) -> ClaimLimits {
    ClaimLimits {
        total,
        per_endpoint: total,
        room: HashMap::new(),
    }
}

fn candidates(
    n: i64,
    endpoint: &EndpointId,
    app: &AppId,
    rates: (Option<u16>, Option<u16>),
) -> Vec<Candidate> {
    (0..n)
        .map(|id| Candidate {
            id,
            endpoint: endpoint.clone(),
            app: app.clone(),
            endpoint_rate: rates.0,
            app_rate: rates.1,
            behind: false,
        })
        .collect()
}

#[test]
fn a_full_bucket_gives_one_seconds_worth_and_defers_the_rest_in_turn() {
    let (endpoint, app) = (EndpointId::generate(), AppId::generate());
    let due = candidates(12, &endpoint, &app, (Some(5), None));
    let start = now();
    let mut buckets = Buckets::default();
    buckets.load(bucket_key("endpoint", endpoint.as_str()), None);
    let picked = buckets.pick(&due, &limits(100), 0, start);
    assert_eq!(picked.ids, [0, 1, 2, 3, 4]);
    let times: Vec<i64> = picked.deferred.iter().map(|(_, at)| *at).collect();
    assert_eq!(times.len(), 7);
    let start = start.timestamp_micros();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // The 6th comes a token (200 ms) after the bucket was full, rounded up.
    assert!(times[0] > start && times[0] <= start + 300_000, "{times:?}");
    assert!(times[6] <= start + 1_600_000, "{times:?}");
    assert_eq!(buckets.changed().len(), 1);
}

#[test]
fn over_a_minute_a_backlog_goes_at_the_rate() {
    let (endpoint, app) = (EndpointId::generate(), AppId::generate());
    let key = bucket_key("endpoint", endpoint.as_str());
    let mut stored = None;
    let mut taken = 0;
    let start = now();
    // A claim every 50 ms for a minute, each finding 100 due deliveries.
    for step in 0..1200 {
        let at = start + TimeDelta::milliseconds(50 * step);
        let mut buckets = Buckets::default();
        buckets.load(key.clone(), stored);
        let due = candidates(100, &endpoint, &app, (Some(20), None));
        let picked = buckets.pick(&due, &limits(1000), 0, at);
        taken += picked.ids.len();
        stored = buckets.changed().first().map(|(_, t)| *t).or(stored);
    }
    // 20 a second for 60 s, plus the full bucket at the start.
    assert!((1200..=1220).contains(&taken), "{taken}");
}

#[test]
fn an_application_bucket_is_shared_by_its_endpoints() {
    let (a, b, app) = (
        EndpointId::generate(),
        EndpointId::generate(),
        AppId::generate(),
    );
    let mut due = candidates(10, &a, &app, (None, Some(6)));
    due.extend(
        candidates(10, &b, &app, (Some(100), Some(6)))
            .into_iter()
            .map(|mut c| {
                c.id += 100;
                c
            }),
    );
    let mut buckets = Buckets::default();
    let picked = buckets.pick(&due, &limits(100), 0, now());
    assert_eq!(picked.ids, [0, 1, 2, 3, 4, 5]);
    assert_eq!(picked.deferred.len(), 14);
    // b had no token in the application bucket, so its own took none either.
    assert_eq!(buckets.changed().len(), 1);
}

#[test]
fn a_delivery_without_room_stays_due_and_takes_no_token() {
    let (endpoint, app) = (EndpointId::generate(), AppId::generate());
    let due = candidates(4, &endpoint, &app, (Some(10), None));
    let mut buckets = Buckets::default();
    let mut room = limits(100);
    room.room.insert(endpoint.clone(), 1);
    let at = now();
    let picked = buckets.pick(&due, &room, 0, at);
    assert_eq!(
        picked,
        Picked {
            ids: vec![0],
            deferred: vec![]
        }
    );
    let interval = buckets.changed()[0].1 - at.timestamp_micros();
    assert_eq!(interval, 100_000, "one token taken");
}

#[test]
fn unthrottled_deliveries_are_picked_as_without_buckets() {
    let (endpoint, app) = (EndpointId::generate(), AppId::generate());
    let due = candidates(10, &endpoint, &app, (None, None));
    let mut buckets = Buckets::default();
    let picked = buckets.pick(&due, &limits(3), 0, now());
    assert_eq!(picked.ids, [0, 1, 2]);
    assert!(picked.deferred.is_empty());
    assert!(buckets.changed().is_empty());
    assert!(bucket_keys(&due).is_empty());
}

#[test]
fn a_deep_backlog_is_deferred_at_most_the_limit_ahead() {
    let (endpoint, app) = (EndpointId::generate(), AppId::generate());
    let due = candidates(500, &endpoint, &app, (Some(1), None));
    let at = now();
    let picked = Buckets::default().pick(&due, &limits(1000), 0, at);
    assert_eq!(picked.ids, [0]);
    let latest = picked.deferred.iter().map(|(_, t)| *t).max().unwrap();
    assert_eq!(latest, at.timestamp_micros() + 10_000_000);
}

#[test]
fn a_rate_of_zero_is_no_limit() {
    assert_eq!(rate(None), None);
    assert_eq!(rate(Some(0)), None);
    assert_eq!(rate(Some(5)), Some(5));
    assert_eq!(rate(Some(70_000)), Some(u16::MAX));
}
