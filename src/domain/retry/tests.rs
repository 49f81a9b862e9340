use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const CAP: Duration = Duration::from_secs(60);

fn spec(json: &str) -> RetryPolicySpec {
    serde_json::from_str(json).expect("a policy spec")
}

fn parse(json: &str) -> Result<RetryPolicy, PolicyError> {
    RetryPolicy::parse(&spec(json), CAP)
}

fn default() -> RetryPolicy {
    RetryPolicy::complete(vec![secs(5), secs(300)], 0.2, secs(15))
}

#[test]
fn the_documented_shapes_parse_and_round_trip() {
    for json in [
        r#"{"schedule":[60,300,900,3600,14400],"jitter":0.1,"retryOn4xx":true,"timeout":15}"#,
        r#"{"exponential":{"base":1,"factor":2.0,"maxDelay":3600,"maxAttempts":8},"retryOn4xx":false,"timeout":5,"timeoutGrowth":2.0,"maxTimeout":30}"#,
        r#"{}"#,
        r#"{"schedule":[]}"#,
    ] {
        let policy = parse(json).unwrap();
        assert_eq!(serde_json::to_string(&policy.spec()).unwrap(), json);
    }
}

#[test]
fn exponential_delays_grow_to_the_cap_and_stop_at_max_attempts() {
    let policy =
        parse(r#"{"exponential":{"base":10,"factor":3,"maxDelay":200,"maxAttempts":5}}"#).unwrap();
    let base = default();
    let effective = policy.over(&base);
    assert_eq!(effective.retries(), 4);
    let delays: Vec<_> = (1..=5)
        .map(|r| effective.delay_before_retry(r, 0.5))
        .collect();
    assert_eq!(
        delays,
        [
            Some(secs(10)),
            Some(secs(30)),
            Some(secs(90)),
            Some(secs(200)),
            None
        ]
    );
    assert_eq!(policy.delays_secs(), Some(vec![10, 30, 90, 200]));
    // The default's jitter applies: the policy sets none.
    assert_eq!(effective.delay_before_retry(1, 0.0), Some(secs(8)));
    assert_eq!(effective.max_delay(), secs(240));
    let once = parse(r#"{"exponential":{"base":10,"maxAttempts":1}}"#).unwrap();
    assert_eq!(once.over(&default()).delay_before_retry(1, 0.5), None);
}

#[test]
fn fields_left_out_are_the_defaults() {
    let policy = parse(r#"{"timeout":5}"#).unwrap();
    let base = default();
    let effective = policy.over(&base);
    assert_eq!(effective.delay_before_retry(2, 0.5), Some(secs(300)));
    assert_eq!(effective.timeout(0, CAP), secs(5));
    assert!(effective.retries_status(400));
}

#[test]
fn retry_on_4xx_false_fails_4xx_but_transient_ones() {
    let policy = parse(r#"{"retryOn4xx":false}"#).unwrap();
    let base = default();
    let effective = policy.over(&base);
    for status in [400, 401, 403, 404, 422, 499] {
        assert!(!effective.retries_status(status), "{status}");
    }
    for status in [408, 425, 429, 500, 503, 302, 0] {
        assert!(effective.retries_status(status), "{status}");
    }
}

#[test]
fn timeouts_grow_to_max_timeout_and_the_cap() {
    let policy = parse(r#"{"timeout":5,"timeoutGrowth":2,"maxTimeout":30}"#).unwrap();
    let base = default();
    let effective = policy.over(&base);
    let timeouts: Vec<_> = (0..5).map(|a| effective.timeout(a, CAP)).collect();
    assert_eq!(timeouts, [secs(5), secs(10), secs(20), secs(30), secs(30)]);
    let uncapped = parse(r#"{"timeout":5,"timeoutGrowth":100}"#).unwrap();
    assert_eq!(uncapped.over(&default()).timeout(3, CAP), CAP);
    assert_eq!(uncapped.over(&default()).timeout(u32::MAX, CAP), CAP);
    // A default above a later, lower cap is brought down to it.
    assert_eq!(default().timeout_for_test(secs(10)), secs(10));
}

impl RetryPolicy {
    fn timeout_for_test(&self, cap: Duration) -> Duration {
        self.over(self).timeout(0, cap)
    }
}

#[test]
fn bad_policies_name_the_field() {
    let cases: &[(&str, &[&str])] = &[
        (r#"{"schedule":[5,-1]}"#, &["schedule", "1"]),
        (r#"{"schedule":[2592001]}"#, &["schedule", "0"]),
        (
            r#"{"schedule":[5],"exponential":{"base":1,"maxAttempts":3}}"#,
            &["exponential"],
        ),
        (r#"{"jitter":1.5}"#, &["jitter"]),
        (r#"{"jitter":-0.1}"#, &["jitter"]),
        (r#"{"timeout":0}"#, &["timeout"]),
        (r#"{"timeout":61}"#, &["timeout"]),
        (r#"{"timeoutGrowth":0.5}"#, &["timeoutGrowth"]),
        (r#"{"maxTimeout":61}"#, &["maxTimeout"]),
        (r#"{"timeout":10,"maxTimeout":5}"#, &["maxTimeout"]),
        (
            r#"{"exponential":{"base":0,"maxAttempts":3}}"#,
            &["exponential", "base"],
        ),
        (
            r#"{"exponential":{"base":1,"factor":0.5,"maxAttempts":3}}"#,
            &["exponential", "factor"],
        ),
        (
            r#"{"exponential":{"base":10,"maxDelay":5,"maxAttempts":3}}"#,
            &["exponential", "maxDelay"],
        ),
        (
            r#"{"exponential":{"base":1,"maxAttempts":0}}"#,
            &["exponential", "maxAttempts"],
        ),
        (
            r#"{"exponential":{"base":1,"maxAttempts":51}}"#,
            &["exponential", "maxAttempts"],
        ),
    ];
    for (json, field) in cases {
        let e = parse(json).expect_err(json);
        assert_eq!(e.field, field.to_vec(), "{json}: {e}");
    }
    let long = format!("{{\"schedule\":{:?}}}", vec![1; 50]);
    assert_eq!(parse(&long).unwrap_err().field, ["schedule"]);
    let most = format!("{{\"schedule\":{:?}}}", vec![1; 49]);
    assert_eq!(parse(&most).unwrap().retries(), 49);
}

#[test]
fn priorities_have_codes_and_sources() {
    for p in Priority::ALL {
        assert_eq!(Priority::from_code(p.code()), Some(p));
        assert_eq!(Priority::parse(p.as_str()), Some(p));
        assert_eq!(p.source(), format!("priority:{}", p.as_str()));
    }
    assert_eq!(Priority::parse("urgent"), None);
}
