//! The declarative file's content, checked: what hookd should hold.
//!
//! Every field is read with its line; [`read`] returns every error found, or the whole
//! desired state. Names follow the API's fields (camelCase), so an object in the file reads
//! as the body one would send.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value as Json};

use super::fields::{Errors, Fields, SecretSource, to_json};
use super::node::Node;
use crate::domain::events::OPERATIONAL_APP_UID as RESERVED_APP_UID;
use crate::domain::{DeliveryOrder, EventTypeName, FeatureFlag, SignatureSpec, Uid};

/// What the file declares. A section that is absent is `None`: out of the file's scope,
/// neither applied nor pruned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    pub event_types: Option<Vec<EventTypeSpec>>,
    pub applications: Option<Vec<AppSpec>>,
    pub operational_endpoints: Option<Vec<OperationalSpec>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeSpec {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    pub schemas: Option<Map<String, Json>>,
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    /// Payloads of this type are checked against its newest schema at ingest.
    pub validate_payloads: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    pub uid: String,
    pub name: String,
    pub throttle_rate: Option<u16>,
    pub metadata: BTreeMap<String, String>,
    /// `None`: the file does not manage this application's endpoints.
    pub endpoints: Option<Vec<EndpointSpec>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSpec {
    pub uid: String,
    /// As hookd stores it (parsed and written back).
    pub url: String,
    pub description: String,
    pub disabled: bool,
    pub throttle_rate: Option<u16>,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub metadata: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    /// The resolved secret; `None`: whatever the endpoint has (generated at creation).
    pub secret: Option<String>,
    /// With every default written out, as the API reads it back.
    pub signature: SignatureSpec,
    pub auto_disable_after_failures: Option<u32>,
    pub auto_disable_after_secs: Option<u32>,
    /// `concurrent` (absent) or `fifo`.
    pub ordering: DeliveryOrder,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OperationalSpec {
    pub uid: String,
    pub url: String,
    pub description: String,
    pub disabled: bool,
    pub throttle_rate: Option<u16>,
    pub event_types: Option<Vec<String>>,
    pub metadata: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub secret: Option<String>,
}

/// Checks the whole tree; `https_only` refuses `http://` URLs.
pub fn read(root: &Node, https_only: bool, source: &SecretSource<'_>) -> Result<Desired, Errors> {
    let mut errors = Errors::default();
    let mut desired = Desired::default();
    let allowed = ["eventTypes", "applications", "operationalEndpoints"];
    if let Some(top) = Fields::of(root, "", &allowed, &mut errors) {
        let ctx = Ctx { https_only, source };
        desired.event_types = top.list("eventTypes", &mut errors).map(|items| {
            let mut seen = HashSet::new();
            items
                .iter()
                .filter_map(|(path, node)| {
                    if let Some(id) = raw_str(node, "name") {
                        unique(&mut seen, id, node.line, path, "name", &mut errors);
                    }
                    event_type(node, path, &mut errors)
                })
                .collect()
        });
        desired.applications = top.list("applications", &mut errors).map(|items| {
            let mut seen = HashSet::new();
            items
                .iter()
                .filter_map(|(path, node)| {
                    if let Some(id) = raw_str(node, "uid") {
                        unique(&mut seen, id, node.line, path, "uid", &mut errors);
                    }
                    application(node, path, &ctx, &mut errors)
                })
                .collect()
        });
        desired.operational_endpoints =
            top.list("operationalEndpoints", &mut errors).map(|items| {
                let mut seen = HashSet::new();
                items
                    .iter()
                    .filter_map(|(path, node)| {
                        if let Some(id) = raw_str(node, "uid") {
                            unique(&mut seen, id, node.line, path, "uid", &mut errors);
                        }
                        super::spec_endpoints::operational(node, path, &ctx, &mut errors)
                    })
                    .collect()
            });
    }
    if errors.0.is_empty() {
        Ok(desired)
    } else {
        errors.0.sort_by_key(|e| e.line);
        Err(errors)
    }
}

pub(super) struct Ctx<'a> {
    pub(super) https_only: bool,
    pub(super) source: &'a SecretSource<'a>,
}

/// The string at `key` of a mapping, before any checking (to spot duplicates).
fn raw_str<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    let super::node::Value::Map(entries) = &node.value else {
        return None;
    };
    entries.iter().find_map(|(k, v)| match &v.value {
        super::node::Value::Str(s) if k.name == key => Some(s.as_str()),
        _ => None,
    })
}

fn unique(
    seen: &mut HashSet<String>,
    id: &str,
    line: usize,
    path: &str,
    field: &str,
    errors: &mut Errors,
) {
    if !seen.insert(id.to_owned()) {
        errors.add(
            line,
            &format!("{path}.{field}"),
            format!("{id:?} is given twice; each object needs its own"),
        );
    }
}

fn event_type(node: &Node, path: &str, errors: &mut Errors) -> Option<EventTypeSpec> {
    let allowed = [
        "name",
        "description",
        "archived",
        "deprecated",
        "schemas",
        "featureFlags",
        "groupName",
        "validatePayloads",
    ];
    let f = Fields::of(node, path, &allowed, errors)?;
    let name = f.required_str("name", errors).and_then(|n| {
        EventTypeName::parse(n)
            .map_err(|e| errors.add(f.line, &f.at("name"), e.to_string()))
            .ok()
    });
    let description = f.str("description", errors).unwrap_or_default().to_owned();
    let schemas = f.get("schemas").and_then(|s| match to_json(s) {
        Json::Object(map) => {
            for (version, schema) in &map {
                if !schema.is_object() {
                    errors.add(
                        s.line,
                        &format!("{}.{version}", f.at("schemas")),
                        "must be a mapping (a JSON Schema)",
                    );
                }
            }
            Some(map)
        }
        _ => {
            errors.add(
                s.line,
                &f.at("schemas"),
                "expected a mapping of versions to schemas",
            );
            None
        }
    });
    let feature_flags = f.strings("featureFlags", errors).map(|flags| {
        flags
            .into_iter()
            .filter_map(|(line, flag)| match FeatureFlag::parse(flag) {
                Ok(_) => Some(flag.to_owned()),
                Err(e) => {
                    errors.add(line, &f.at("featureFlags"), e.to_string());
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    Some(EventTypeSpec {
        name: name?.to_string(),
        description,
        archived: f.bool("archived", errors),
        deprecated: f.bool("deprecated", errors),
        schemas,
        feature_flags: feature_flags.filter(|f| !f.is_empty()),
        group_name: f.str("groupName", errors).map(str::to_owned),
        validate_payloads: f.bool("validatePayloads", errors),
    })
}

pub(super) fn uid(f: &Fields<'_>, errors: &mut Errors) -> Option<String> {
    let Some(node) = f.get("uid") else {
        errors.add(
            f.line,
            &f.at("uid"),
            "missing; every object needs a uid so that apply can find it again",
        );
        return None;
    };
    let text = f.str("uid", errors)?;
    match Uid::parse(text) {
        Ok(uid) => Some(uid.to_string()),
        Err(e) => {
            errors.add(node.line, &f.at("uid"), e.to_string());
            None
        }
    }
}

pub(super) fn throttle(f: &Fields<'_>, errors: &mut Errors) -> Option<u16> {
    f.number("throttleRate", u64::from(u16::MAX), errors)
        .map(|n| n as u16)
        .filter(|n| *n > 0)
}

fn application(node: &Node, path: &str, ctx: &Ctx<'_>, errors: &mut Errors) -> Option<AppSpec> {
    let allowed = ["uid", "name", "throttleRate", "metadata", "endpoints"];
    let f = Fields::of(node, path, &allowed, errors)?;
    let uid = uid(&f, errors);
    if uid.as_deref() == Some(RESERVED_APP_UID) {
        errors.add(
            f.line,
            &f.at("uid"),
            "is reserved for hookd's operational webhooks",
        );
    }
    let name = f.required_str("name", errors).map(str::to_owned);
    if name.as_deref() == Some("") {
        errors.add(f.line, &f.at("name"), "must not be empty");
    }
    let throttle_rate = throttle(&f, errors);
    let metadata = f.string_map("metadata", errors);
    let endpoints = f.list("endpoints", errors).map(|items| {
        let mut seen = HashSet::new();
        items
            .iter()
            .filter_map(|(path, node)| {
                if let Some(id) = raw_str(node, "uid") {
                    unique(&mut seen, id, node.line, path, "uid", errors);
                }
                super::spec_endpoints::endpoint(node, path, ctx, errors)
            })
            .collect()
    });
    Some(AppSpec {
        uid: uid?,
        name: name?,
        throttle_rate,
        metadata,
        endpoints,
    })
}
