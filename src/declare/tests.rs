//! The file parser: line numbers, secret references, every error at once.

use std::path::Path;

use super::node::Format;
use super::{FileError, SecretSource, parse};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn check(text: &str, format: Format, https_only: bool) -> Result<super::Desired, Vec<FileError>> {
    // `acme.secret` holds the secret, `bad.secret` something else.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("acme.secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(dir.path().join("bad.secret"), "not a secret").unwrap();
    let env = |name: &str| (name == "ACME_SECRET").then(|| SECRET.to_owned());
    let source = SecretSource {
        env: &env,
        base_dir: dir.path(),
    };
    parse(text, format, https_only, &source)
}

fn lines(errors: &[FileError]) -> Vec<(usize, String)> {
    errors
        .iter()
        .map(|e| (e.line, format!("{}: {}", e.path, e.message)))
        .collect()
}

const GOOD: &str = "\
eventTypes:
  - name: invoice.paid
    description: An invoice was paid
    schemas:
      '1': {type: object}
    validatePayloads: true
applications:
  - uid: acme
    name: Acme
    throttleRate: 5
    metadata: {tier: gold}
    endpoints:
      - uid: main
        url: https://hooks.acme.example/in
        eventTypes: [invoice.paid]
        channels: [eu]
        headers: {X-Env: prod}
        secret: env:ACME_SECRET
        signature: {scheme: hmac-sha256}
      - uid: backup
        url: http://backup.acme.example
        secret: file:acme.secret
operationalEndpoints:
  - uid: ops
    url: https://ops.example/hookd
    eventTypes: [endpoint.disabled]
";

#[test]
fn a_good_file_reads_whole_with_its_secrets() {
    let desired = check(GOOD, Format::Yaml, false).unwrap();
    let apps = desired.applications.unwrap();
    let endpoints = apps[0].endpoints.as_ref().unwrap();
    assert_eq!(endpoints[0].secret.as_deref(), Some(SECRET));
    assert_eq!(endpoints[1].secret.as_deref(), Some(SECRET));
    assert_eq!(endpoints[1].url, "http://backup.acme.example/");
    assert_eq!(endpoints[0].signature.prefix.as_deref(), Some("sha256="));
    assert_eq!(apps[0].throttle_rate, Some(5));
    let et = &desired.event_types.unwrap()[0];
    assert_eq!(et.schemas.as_ref().unwrap()["1"]["type"], "object");
    assert!(et.validate_payloads);
    assert_eq!(desired.operational_endpoints.unwrap()[0].uid, "ops");
}

#[test]
fn https_only_refuses_http_urls_at_their_line() {
    let errors = check(GOOD, Format::Yaml, true).unwrap_err();
    assert_eq!(
        lines(&errors),
        vec![(
            21,
            "applications[0].endpoints[1].url: must be https:// (https_only is on)".into()
        )]
    );
}

#[test]
fn every_error_is_reported_with_its_line() {
    let text = "\
applications:
  - uid: acme
    name: Acme
    colour: blue
    endpoints:
      - url: https://a.example
      - uid: x
        url: not a url
        secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
      - uid: x
        url: https://b.example
        secret: file:missing.secret
      - uid: y
        url: https://c.example
        secret: env:NOT_SET
      - uid: z
        url: https://d.example
        secret: file:bad.secret
        throttleRate: -1
        ordering: lifo
  - uid: acme
    name: Again
    rateLimit: 3
";
    let errors = check(text, Format::Yaml, false).unwrap_err();
    let found = lines(&errors);
    let at = |line: usize, needle: &str| {
        assert!(
            found.iter().any(|(l, m)| *l == line && m.contains(needle)),
            "no error containing {needle:?} at line {line} in {found:#?}"
        );
    };
    at(4, "applications[0].colour: unknown key");
    at(6, "endpoints[0].uid: missing");
    at(8, "endpoints[1].url: is not a valid URL");
    at(
        9,
        "endpoints[1].secret: secrets may not be written in the file",
    );
    at(10, "endpoints[2].uid: \"x\" is given twice");
    at(12, "cannot read the secret file");
    at(15, "environment variable NOT_SET is not set");
    at(18, "endpoints[4].secret: the referenced secret must be");
    at(19, "throttleRate: expected a whole number");
    at(20, "endpoints[4].ordering: unknown ordering \"lifo\"");
    at(21, "applications[1].uid: \"acme\" is given twice");
    at(
        23,
        "rateLimit: unknown key (hookd's name for rateLimit is throttleRate)",
    );
    assert_eq!(found.len(), 12, "{found:#?}");
    // The inline secret is never echoed.
    assert!(found.iter().all(|(_, m)| !m.contains("MfKQ9r8")));
}

#[test]
fn a_custom_header_the_signature_sets_is_refused() {
    let text = "\
operationalEndpoints:
  - uid: ops
    url: https://ops.example
    headers: {webhook-signature: x}
applications:
  - uid: a
    name: A
    endpoints:
      - uid: e
        url: https://e.example
        signature: {scheme: hmac-sha256, header: X-Hub-Signature-256}
        headers:
          x-hub-signature-256: x
";
    let errors = check(text, Format::Yaml, false).unwrap_err();
    let found = lines(&errors);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].0, 4, "{found:#?}");
    assert!(
        found[0].1.starts_with("operationalEndpoints[0].headers:"),
        "{found:#?}"
    );
    assert_eq!(found[1].0, 13, "{found:#?}");
    assert!(
        found[1].1.starts_with(
            "applications[0].endpoints[0].headers: x-hub-signature-256 is the header the signature scheme sets"
        ),
        "{found:#?}"
    );
}

#[test]
fn toml_and_json_files_report_lines_too() {
    let toml = "\
[[applications]]
uid = \"acme\"
name = \"Acme\"

[[applications.endpoints]]
uid = \"main\"
url = \"ftp://x.example\"
";
    let errors = check(toml, Format::Toml, false).unwrap_err();
    assert_eq!(errors[0].line, 7, "{errors:?}");
    assert!(errors[0].message.contains("http or https"), "{errors:?}");

    let json = "{\n  \"eventTypes\": [\n    {\"description\": \"no name\"}\n  ]\n}\n";
    let errors = check(json, Format::Json, false).unwrap_err();
    assert_eq!(
        lines(&errors),
        vec![(3, "eventTypes[0].name: missing; it is required".into())]
    );
}

#[test]
fn syntax_errors_and_unknown_formats_are_refused() {
    let errors = check("applications: [\n", Format::Yaml, false).unwrap_err();
    assert_eq!(errors.len(), 1);
    let errors = super::load(Path::new("hookd.ini"), false).unwrap_err();
    assert!(errors[0].message.contains("unknown format"), "{errors:?}");
}

#[test]
fn the_readme_example_is_a_valid_file() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("### Endpoints as code").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    // Its file references point nowhere here: read them from the environment instead.
    let example = example.replace("file:/run/secrets/hookd-ops", "env:OPS_SECRET");
    let env = |_: &str| Some(SECRET.to_owned());
    let source = SecretSource {
        env: &env,
        base_dir: Path::new("."),
    };
    let desired = parse(&example, Format::Yaml, true, &source).unwrap();
    let apps = desired.applications.unwrap();
    let endpoint = &apps[0].endpoints.as_ref().unwrap()[0];
    assert_eq!(endpoint.secret.as_deref(), Some(SECRET));
    assert_eq!(endpoint.auto_disable_after_failures, Some(50));
}

#[test]
fn an_inline_ed25519_secret_is_refused_too() {
    let text = "\
applications:
  - uid: acme
    name: Acme
    endpoints:
      - uid: x
        url: https://a.example
        secret: whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
";
    let errors = check(text, Format::Yaml, false).unwrap_err();
    assert_eq!(
        lines(&errors),
        vec![(
            7,
            "applications[0].endpoints[0].secret: secrets may not be written in the file; give env:NAME or file:PATH".into()
        )]
    );
}
