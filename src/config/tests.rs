use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_valid_and_documented() {
    let c = Config::defaults();
    assert_eq!(c.listen, "127.0.0.1:8071".parse().unwrap());
    assert_eq!(c.max_payload_bytes, 1 << 20);
    assert_eq!(
        (c.payload_retention_days, c.retention_days),
        (0, 0),
        "nothing is deleted unless asked"
    );
    assert_eq!(
        c.database().unwrap(),
        Database::SqliteFile("./hookd-data/hookd.db".into())
    );
}

#[test]
fn env_overrides_file_overrides_defaults() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "max_payload_bytes = 10\nlog_format = \"json\"").unwrap();
    let c = Config::load(
        Some(file.path()),
        env(&[("HOOKD_MAX_PAYLOAD_BYTES", "20"), ("PATH", "/bin")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.max_payload_bytes, 20);
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn flags_override_everything() {
    let c = Config::load(
        None,
        env(&[("HOOKD_LISTEN", "127.0.0.1:1")]),
        &Overrides {
            listen: Some("127.0.0.1:2".into()),
            data_dir: None,
            role: None,
            apply_file: None,
        },
    )
    .unwrap();
    assert_eq!(c.listen.port(), 2);
}

#[test]
fn lists_come_from_comma_separated_env_values() {
    let c = Config::load(
        None,
        env(&[
            ("HOOKD_RETRY_SCHEDULE", "1,1,1"),
            ("HOOKD_ALLOWED_NETWORKS", "127.0.0.0/8, 10.0.0.0/8"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.retry_schedule, [1, 1, 1]);
    assert_eq!(c.allowed_networks, ["127.0.0.0/8", "10.0.0.0/8"]);
    assert_eq!(
        Config::defaults().retry_schedule,
        [5, 300, 1800, 7200, 18000, 36000, 36000]
    );
}

#[test]
fn unknown_keys_are_errors() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "lisen = \"x\"").unwrap();
    let err = Config::load(Some(file.path()), env(&[]), &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("unknown option `lisen`"), "{err}");

    let err = Config::load(None, env(&[("HOOKD_LISEN", "x")]), &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("HOOKD_LISEN"), "{err}");
}

#[test]
fn invalid_values_are_errors() {
    for (key, value) in [
        ("HOOKD_MAX_PAYLOAD_BYTES", "lots"),
        ("HOOKD_MAX_PAYLOAD_BYTES", "0"),
        ("HOOKD_LISTEN", "not-an-address"),
        ("HOOKD_LOG_FORMAT", "xml"),
        ("HOOKD_DATABASE_URL", "mysql://x"),
        ("HOOKD_RETRY_SCHEDULE", "1,soon"),
        ("HOOKD_RETRY_JITTER", "1.5"),
        ("HOOKD_SIGNATURE_HEADERS", "hmac"),
        ("HOOKD_ALLOWED_NETWORKS", "10.0.0.0/33"),
        ("HOOKD_DATABASE_POOL_MAX", "1"),
        // One for the writer thread, one to listen, one for the rest.
        ("HOOKD_DATABASE_POOL_MAX", "2"),
        ("HOOKD_ROLE", "everything"),
        // Roles split a service across nodes sharing PostgreSQL, not an SQLite file.
        ("HOOKD_ROLE", "worker"),
        ("HOOKD_RETENTION_DAYS", "36501"),
        ("HOOKD_RETENTION_DAYS", "-1"),
        ("HOOKD_PAYLOAD_RETENTION_DAYS", "36501"),
        // It counts the body's arrival too, so it must leave the body its time.
        ("HOOKD_API_REQUEST_TIMEOUT_SECS", "60"),
        ("HOOKD_MAX_PENDING_MESSAGES", "0"),
        ("HOOKD_HEALTH_WINDOW", "0"),
        ("HOOKD_HEALTH_WINDOW", "10001"),
        ("HOOKD_DEGRADED_BELOW", "1.2"),
        ("HOOKD_FAILING_ALERT_AT", "5,3"),
        ("HOOKD_FAILING_ALERT_AT", "0,3"),
        ("HOOKD_FAILING_ALERT_AT", ""),
        ("HOOKD_AUTO_DISABLE_AFTER_FAILURES", "-1"),
        // The default timeout must fit under the bound of every timeout.
        ("HOOKD_REQUEST_TIMEOUT_SECS", "61"),
        ("HOOKD_MAX_REQUEST_TIMEOUT_SECS", "0"),
        ("HOOKD_MAX_REQUEST_TIMEOUT_SECS", "3601"),
        ("HOOKD_RETRY_POLICY_HIGH", "not json"),
        ("HOOKD_RETRY_POLICY_LOW", r#"{"timeout": 61}"#),
        (
            "HOOKD_RETRY_POLICY_NORMAL",
            r#"{"schedule": [1], "exponential": {"base": 1, "maxAttempts": 2}}"#,
        ),
    ] {
        let result = Config::load(None, env(&[(key, value)]), &Overrides::default());
        assert!(result.is_err(), "{key}={value} was accepted");
    }
}

#[test]
fn postgres_urls_and_roles_are_understood() {
    let url = "postgres://hookd:pw@db:5432/hookd";
    let c = Config::load(
        None,
        env(&[("HOOKD_DATABASE_URL", url), ("HOOKD_ROLE", "api")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.database().unwrap(), Database::Postgres(url.into()));
    assert_eq!(c.role, Role::Api);
    assert!(c.role.serves_api() && !c.role.delivers());
    assert!(
        !format!("{c:?}").contains(":pw@"),
        "the password is not logged"
    );

    let flagged = Config::load(
        None,
        env(&[("HOOKD_DATABASE_URL", url), ("HOOKD_ROLE", "api")]),
        &Overrides {
            role: Some(Role::Worker),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(flagged.role, Role::Worker, "--role wins over HOOKD_ROLE");
    let defaults = Config::defaults();
    assert_eq!(defaults.role, Role::All);
    assert!(defaults.database_pool_min <= defaults.database_pool_max);
}

#[test]
fn debug_never_shows_the_admin_token() {
    let c = Config::load(
        None,
        env(&[("HOOKD_ADMIN_TOKEN", "s3cret")]),
        &Overrides::default(),
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn a_node_is_dead_only_after_missing_several_heartbeats() {
    let c = Config::defaults();
    // Kill to re-attempt within 15 s: dead after 10 s, noticed within one more beat.
    assert_eq!((c.node_heartbeat_secs, c.node_dead_after_secs), (2, 10));
    let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs), &Overrides::default());
    for (heartbeat, dead_after, field) in [
        ("0", "10", "node_heartbeat_secs"),
        ("2", "5", "node_dead_after_secs"),
        ("5", "14", "node_dead_after_secs"),
    ] {
        let err = load(&[
            ("HOOKD_NODE_HEARTBEAT_SECS", heartbeat),
            ("HOOKD_NODE_DEAD_AFTER_SECS", dead_after),
        ])
        .err()
        .unwrap_or_else(|| panic!("heartbeat {heartbeat}, dead after {dead_after} accepted"));
        assert!(err.to_string().contains(field), "{err}");
    }
    let c = load(&[
        ("HOOKD_NODE_HEARTBEAT_SECS", "1"),
        ("HOOKD_NODE_DEAD_AFTER_SECS", "3"),
    ])
    .unwrap();
    assert_eq!((c.node_heartbeat_secs, c.node_dead_after_secs), (1, 3));
}

#[test]
fn traces_are_off_by_default_and_checked_when_set() {
    assert!(Config::defaults().traces().unwrap().is_none());
    let c = Config::load(
        None,
        env(&[
            ("HOOKD_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            (
                "HOOKD_OTLP_HEADERS",
                "authorization=Bearer s3cret,x-tenant=ops",
            ),
            ("HOOKD_OTLP_SAMPLE_RATIO", "0.5"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    let traces = c.traces().unwrap().expect("on");
    assert_eq!(traces.url.as_str(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(traces.headers["x-tenant"], "ops");
    assert_eq!(traces.service_name, "hookd");
    assert_eq!(traces.sample_ratio, 0.5);
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "headers are not logged"
    );

    for (key, value, named) in [
        ("HOOKD_OTLP_ENDPOINT", "127.0.0.1:4318", "otlp_endpoint"),
        (
            "HOOKD_OTLP_ENDPOINT",
            "grpc://collector:4317",
            "otlp_endpoint",
        ),
        ("HOOKD_OTLP_HEADERS", "authorization", "otlp_headers"),
        ("HOOKD_OTLP_SAMPLE_RATIO", "1.5", "otlp_sample_ratio"),
        ("HOOKD_OTLP_SAMPLE_RATIO", "-0.1", "otlp_sample_ratio"),
    ] {
        let err = Config::load(None, env(&[(key, value)]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains(named), "{key}={value}: {err}");
    }
    let err = Config::load(
        None,
        env(&[
            ("HOOKD_OTLP_ENDPOINT", "http://c:4318"),
            ("HOOKD_OTLP_SERVICE_NAME", " "),
        ]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("otlp_service_name"), "{err}");
}

#[test]
fn priority_policies_are_json_over_the_default() {
    let c = Config::load(
        None,
        env(&[
            (
                "HOOKD_RETRY_POLICY_HIGH",
                r#"{"schedule": [1, 2], "timeout": 5}"#,
            ),
            ("HOOKD_MAX_REQUEST_TIMEOUT_SECS", "90"),
            ("HOOKD_REQUEST_TIMEOUT_SECS", "90"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    let [high, normal, low] = c.priority_policies().unwrap();
    assert_eq!(high.unwrap().delays_secs(), Some(vec![1, 2]));
    assert!(normal.is_none() && low.is_none());
    let default = c.default_retry_policy();
    assert_eq!(default.retries(), c.retry_schedule.len());
    assert_eq!(
        default.over(&default).timeout(0, c.max_request_timeout()),
        std::time::Duration::from_secs(90)
    );
    let err = Config::load(
        None,
        env(&[("HOOKD_RETRY_POLICY_LOW", r#"{"jitter": 3}"#)]),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("retry_policy_low") && err.contains("jitter"),
        "{err}"
    );
}

#[test]
fn secrets_come_from_files_before_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().to_str().unwrap();
    let token_file = dir.path().join("token.txt");
    std::fs::write(&token_file, "from-file\n").unwrap();
    std::fs::write(dir.path().join("hookd_metrics_token"), "docker-secret").unwrap();
    std::fs::write(
        dir.path().join("hookd_database_url"),
        "postgres://u:p@db/hookd\r\n",
    )
    .unwrap();
    let c = Config::load(
        None,
        env(&[
            ("HOOKD_ADMIN_TOKEN", "from-env"),
            ("HOOKD_ADMIN_TOKEN_FILE", token_file.to_str().unwrap()),
            ("HOOKD_METRICS_TOKEN", "from-env"),
            ("HOOKD_SECRETS_DIR", secrets),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    // HOOKD_<OPTION>_FILE, then the Docker secrets directory, then the environment.
    assert_eq!(c.admin_token, "from-file");
    assert_eq!(c.metrics_token, "docker-secret");
    assert_eq!(c.database_url, "postgres://u:p@db/hookd");
    let shown = format!("{c:?}");
    for secret in ["from-file", "docker-secret", ":p@"] {
        assert!(!shown.contains(secret), "{secret} logged: {shown}");
    }

    // Without files, the environment.
    let c = Config::load(
        None,
        env(&[("HOOKD_ADMIN_TOKEN", "from-env")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.admin_token, "from-env");
}

#[test]
fn a_missing_or_empty_secret_file_is_an_error_naming_it_and_other_file_variables_are_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs), &Overrides::default());
    let err = load(&[("HOOKD_ADMIN_TOKEN_FILE", "/nonexistent/hookd-token")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HOOKD_ADMIN_TOKEN_FILE") && err.contains("/nonexistent/hookd-token"),
        "{err}"
    );
    let err = load(&[("HOOKD_METRICS_TOKEN_FILE", empty.to_str().unwrap())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("empty") && err.contains("metrics_token"),
        "{err}"
    );
    let err = load(&[("HOOKD_LISTEN_FILE", "/tmp/x")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("HOOKD_LISTEN_FILE"), "{err}");
}

#[test]
fn main_keys_are_32_bytes_of_base64_from_the_environment_or_files() {
    use crate::domain::sealed::SecretsAtRest;
    let (old, new) = (
        crate::signing::at_rest::generate_main_key(),
        crate::signing::at_rest::generate_main_key(),
    );
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{new}\n")).unwrap();
    let previous_file = dir.path().join("previous");
    std::fs::write(&previous_file, format!("{old}\n")).unwrap();
    let c = Config::load(
        None,
        env(&[
            ("HOOKD_MAIN_KEY_FILE", key_file.to_str().unwrap()),
            (
                "HOOKD_PREVIOUS_MAIN_KEYS_FILE",
                previous_file.to_str().unwrap(),
            ),
            ("HOOKD_SECRETS_DIR", dir.path().to_str().unwrap()),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    let keyring = c.keyring().unwrap();
    let under_old = crate::signing::at_rest::Keyring::new(
        Some(&crate::signing::at_rest::parse_main_key(&old).unwrap()),
        &[],
    )
    .seal("whsec_x", "b");
    assert_eq!(keyring.open(&under_old, "b").unwrap(), "whsec_x");
    let shown = format!("{c:?}");
    assert!(!shown.contains(&new) && !shown.contains(&old), "{shown}");

    let from_env = Config::load(
        None,
        env(&[
            ("HOOKD_MAIN_KEY", &new),
            ("HOOKD_PREVIOUS_MAIN_KEYS", &format!("{old}, {new}")),
            ("HOOKD_SECRETS_DIR", dir.path().to_str().unwrap()),
        ]),
        &Overrides::default(),
    );
    assert!(from_env.unwrap().keyring().is_ok());

    let short = "c2hvcnQ=";
    for (pairs, option) in [
        (vec![("HOOKD_MAIN_KEY", short)], "main_key"),
        (vec![("HOOKD_MAIN_KEY", "not a key!")], "main_key"),
        (
            vec![
                ("HOOKD_MAIN_KEY", new.as_str()),
                ("HOOKD_PREVIOUS_MAIN_KEYS", short),
            ],
            "previous_main_keys",
        ),
        (
            vec![("HOOKD_PREVIOUS_MAIN_KEYS", old.as_str())],
            "previous_main_keys",
        ),
    ] {
        let mut pairs = pairs;
        pairs.push(("HOOKD_SECRETS_DIR", dir.path().to_str().unwrap()));
        let e = Config::load(None, env(&pairs), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("`{option}`")), "{e}");
        assert!(!e.contains(short) && !e.contains(&old), "{e}");
    }
}

#[test]
fn production_mode_turns_https_only_on_and_refuses_unsafe_settings() {
    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const TOKEN: &str = "hk_a-long-random-admin-token-0123";
    let load = |vars: &[(&str, &str)]| {
        let mut all = vec![("HOOKD_MODE", "production")];
        all.extend_from_slice(vars);
        Config::load(None, env(&all), &Overrides::default())
    };
    let c = load(&[("HOOKD_MAIN_KEY", KEY), ("HOOKD_ADMIN_TOKEN", TOKEN)]).unwrap();
    assert!(c.https_only);
    let c = load(&[
        ("HOOKD_MAIN_KEY", KEY),
        ("HOOKD_HTTPS_ONLY", "false"),
        ("HOOKD_ALLOWED_NETWORKS", "10.0.0.0/8,fc00::/7,127.0.0.1"),
    ])
    .unwrap();
    assert!(c.https_only, "production keeps https_only on");

    for (vars, option, value) in [
        (vec![("HOOKD_ADMIN_TOKEN", TOKEN)], "main_key", ""),
        (
            vec![("HOOKD_MAIN_KEY", KEY), ("HOOKD_ADMIN_TOKEN", "change-me")],
            "admin_token",
            "change-me",
        ),
        (
            vec![
                ("HOOKD_MAIN_KEY", KEY),
                ("HOOKD_ADMIN_TOKEN", "short-token"),
            ],
            "admin_token",
            "short-token",
        ),
        (
            vec![
                ("HOOKD_MAIN_KEY", KEY),
                ("HOOKD_ALLOWED_NETWORKS", "0.0.0.0/0"),
            ],
            "allowed_networks",
            "",
        ),
        (
            vec![("HOOKD_MAIN_KEY", KEY), ("HOOKD_ALLOWED_NETWORKS", "::/0")],
            "allowed_networks",
            "",
        ),
    ] {
        let err = load(&vars).unwrap_err().to_string();
        assert!(
            err.contains(option) && err.contains("production"),
            "{vars:?}: {err}"
        );
        if !value.is_empty() {
            assert!(!err.contains(value), "the error shows the value: {err}");
        }
    }
    // The same settings start in development, the default.
    let c = Config::load(
        None,
        env(&[
            ("HOOKD_ADMIN_TOKEN", "change-me"),
            ("HOOKD_ALLOWED_NETWORKS", "0.0.0.0/0"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.mode, crate::config::Mode::Development);
    assert!(!c.https_only);
}
