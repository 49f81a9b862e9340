//! Comparing what the file declares with what hookd holds, and the API calls that close the
//! gap: one [`Change`] per object, in an order that works (event types, applications, their
//! endpoints, operational endpoints, then what `--prune` removes).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use reqwest::Method;
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::client::{Client, RemoteError, segment};
use super::spec::{AppSpec, Desired, EndpointSpec, EventTypeSpec};
use crate::domain::EndpointHeaders;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    /// Event types are archived, not deleted, by `--prune`.
    Archive,
}

/// One object to change, the fields that change, and the requests that change it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub action: Action,
    /// `eventType`, `application`, `endpoint` or `operationalEndpoint`.
    pub kind: &'static str,
    /// The name or uid (`app/endpoint` for endpoints; the id when it has no uid).
    pub id: String,
    /// For updates: the fields that differ.
    pub fields: Vec<String>,
    #[serde(skip)]
    pub(super) calls: Vec<(Method, String, Option<Json>)>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Archive => "archive",
        };
        write!(f, "{action} {} {}", self.kind, self.id)?;
        if !self.fields.is_empty() {
            write!(f, " ({})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Objects the file lists that are already as declared.
    pub unchanged: usize,
}

pub(super) fn change(
    action: Action,
    kind: &'static str,
    id: String,
    fields: Vec<String>,
) -> Change {
    Change {
        action,
        kind,
        id,
        fields,
        calls: Vec::new(),
    }
}

impl Change {
    pub(super) fn call(mut self, method: Method, path: String, body: Option<Json>) -> Self {
        self.calls.push((method, path, body));
        self
    }
}

/// The names of the fields whose wanted value differs from the current one (absent: null).
pub(super) fn differing(wanted: &Json, current: &Json) -> Vec<String> {
    let Json::Object(wanted) = wanted else {
        return Vec::new();
    };
    wanted
        .iter()
        .filter(|(k, v)| current.get(k.as_str()).unwrap_or(&Json::Null) != *v)
        .map(|(k, _)| k.clone())
        .collect()
}

pub(super) fn by_uid(items: Vec<Json>) -> (HashMap<String, Json>, Vec<Json>) {
    let mut known = HashMap::new();
    let mut others = Vec::new();
    for item in items {
        match item.get("uid").and_then(Json::as_str) {
            Some(uid) => {
                known.insert(uid.to_owned(), item);
            }
            None => others.push(item),
        }
    }
    (known, others)
}

pub(super) fn id_of(item: &Json) -> String {
    item.get("uid")
        .and_then(Json::as_str)
        .or_else(|| item.get("id").and_then(Json::as_str))
        .unwrap_or_default()
        .to_owned()
}

pub(super) fn sorted(list: &Option<Vec<String>>) -> Json {
    match list {
        None => Json::Null,
        Some(items) => {
            let mut items = items.clone();
            items.sort();
            items.dedup();
            json!(items)
        }
    }
}

/// Works out the changes; reads hookd, writes nothing.
pub async fn plan(client: &Client, desired: &Desired, prune: bool) -> Result<Plan, RemoteError> {
    let mut plan = Plan::default();
    if let Some(wanted) = &desired.event_types {
        event_types(client, wanted, prune, &mut plan).await?;
    }
    if let Some(wanted) = &desired.applications {
        applications(client, wanted, prune, &mut plan).await?;
    }
    if let Some(wanted) = &desired.operational_endpoints {
        super::endpoints::operational(client, wanted, prune, &mut plan).await?;
    }
    // Removals last: nothing the file keeps depends on them.
    plan.changes
        .sort_by_key(|c| matches!(c.action, Action::Delete | Action::Archive));
    Ok(plan)
}

fn event_type_body(et: &EventTypeSpec) -> Json {
    json!({
        "description": et.description,
        "archived": et.archived,
        "deprecated": et.deprecated,
        "schemas": et.schemas,
        "featureFlags": et.feature_flags,
        "groupName": et.group_name,
        "validatePayloads": et.validate_payloads,
    })
}

async fn event_types(
    client: &Client,
    wanted: &[EventTypeSpec],
    prune: bool,
    plan: &mut Plan,
) -> Result<(), RemoteError> {
    let current: HashMap<String, Json> = client
        .list("/api/v1/event-type", "&include_archived=true")
        .await?
        .into_iter()
        .filter_map(|et| Some((et.get("name")?.as_str()?.to_owned(), et)))
        .collect();
    for et in wanted {
        let body = event_type_body(et);
        match current.get(&et.name) {
            None => {
                let mut create = body.clone();
                create["name"] = json!(et.name);
                plan.changes.push(
                    change(Action::Create, "eventType", et.name.clone(), Vec::new()).call(
                        Method::POST,
                        "/api/v1/event-type".into(),
                        Some(create),
                    ),
                );
            }
            Some(now) => {
                let fields = differing(&body, now);
                if fields.is_empty() {
                    plan.unchanged += 1;
                    continue;
                }
                let path = format!("/api/v1/event-type/{}", segment(&et.name));
                plan.changes.push(
                    change(Action::Update, "eventType", et.name.clone(), fields).call(
                        Method::PUT,
                        path,
                        Some(body),
                    ),
                );
            }
        }
    }
    if prune {
        let listed: Vec<&str> = wanted.iter().map(|et| et.name.as_str()).collect();
        let mut gone: Vec<(&String, &Json)> = current
            .iter()
            .filter(|(name, et)| {
                !listed.contains(&name.as_str()) && et.get("archived") != Some(&json!(true))
            })
            .collect();
        gone.sort_by_key(|(name, _)| name.as_str());
        for (name, _) in gone {
            let path = format!("/api/v1/event-type/{}", segment(name));
            plan.changes.push(
                change(Action::Archive, "eventType", name.clone(), Vec::new()).call(
                    Method::DELETE,
                    path,
                    None,
                ),
            );
        }
    }
    Ok(())
}

async fn applications(
    client: &Client,
    wanted: &[AppSpec],
    prune: bool,
    plan: &mut Plan,
) -> Result<(), RemoteError> {
    let (current, without_uid) = by_uid(client.list("/api/v1/app", "").await?);
    for app in wanted {
        let body = json!({
            "name": app.name,
            "throttleRate": app.throttle_rate,
            "metadata": app.metadata,
        });
        let app_path = format!("/api/v1/app/{}", segment(&app.uid));
        let exists = match current.get(&app.uid) {
            None => {
                let mut create = body.clone();
                create["uid"] = json!(app.uid);
                plan.changes.push(
                    change(Action::Create, "application", app.uid.clone(), Vec::new()).call(
                        Method::POST,
                        "/api/v1/app".into(),
                        Some(create),
                    ),
                );
                false
            }
            Some(now) => {
                let fields = differing(&body, now);
                if fields.is_empty() {
                    plan.unchanged += 1;
                } else {
                    let mut put = body.clone();
                    put["uid"] = json!(app.uid);
                    plan.changes.push(
                        change(Action::Update, "application", app.uid.clone(), fields).call(
                            Method::PUT,
                            app_path.clone(),
                            Some(put),
                        ),
                    );
                }
                true
            }
        };
        if let Some(endpoints) = &app.endpoints {
            super::endpoints::plan_app(client, app, endpoints, exists, prune, plan).await?;
        }
    }
    if prune {
        let listed: Vec<&str> = wanted.iter().map(|a| a.uid.as_str()).collect();
        let mut gone: Vec<&Json> = current
            .iter()
            .filter(|(uid, _)| !listed.contains(&uid.as_str()))
            .map(|(_, a)| a)
            .chain(without_uid.iter())
            .collect();
        gone.sort_by_key(|a| id_of(a));
        for app in gone {
            let id = app.get("id").and_then(Json::as_str).unwrap_or_default();
            plan.changes.push(
                change(Action::Delete, "application", id_of(app), Vec::new()).call(
                    Method::DELETE,
                    format!("/api/v1/app/{}", segment(id)),
                    None,
                ),
            );
        }
    }
    Ok(())
}

/// The header changes: compared as far as hookd shows them (values of sensitive headers
/// such as `Authorization` are never shown, so only their names are compared).
pub(super) fn headers_differ(wanted: &BTreeMap<String, String>, current: Option<&Json>) -> bool {
    let (shown, mut sensitive) = match EndpointHeaders::parse(wanted.clone()) {
        Ok(h) => h.split_sensitive(),
        Err(_) => return true,
    };
    let now_shown = current
        .and_then(|c| c.get("headers"))
        .cloned()
        .unwrap_or(json!({}));
    let mut now_sensitive: Vec<String> = current
        .and_then(|c| c.get("sensitive"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    sensitive.sort();
    now_sensitive.sort();
    json!(shown) != now_shown || sensitive != now_sensitive
}

pub(super) fn endpoint_body(ep: &EndpointSpec) -> Json {
    json!({
        "url": ep.url,
        "description": ep.description,
        "disabled": ep.disabled,
        "throttleRate": ep.throttle_rate,
        "eventTypes": sorted(&ep.event_types),
        "channels": sorted(&ep.channels),
        "metadata": ep.metadata,
        "signature": ep.signature,
        "autoDisableAfterFailures": ep.auto_disable_after_failures,
        "autoDisableAfterSecs": ep.auto_disable_after_secs,
        "ordering": ep.ordering,
    })
}

/// Where an apply stopped: the changes made before, the one refused, and why.
#[derive(Debug, thiserror::Error)]
#[error("applied {done} of {total} changes; then `{failed}` was refused: {error}")]
pub struct Stopped {
    pub done: usize,
    pub total: usize,
    pub failed: String,
    pub error: RemoteError,
}

/// Makes the changes in order, stopping at the first the API refuses.
pub async fn execute(
    client: &Client,
    plan: &Plan,
    on_change: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<(), Stopped> {
    for (done, change) in plan.changes.iter().enumerate() {
        on_change(done, plan.changes.len());
        for (method, path, body) in &change.calls {
            if let Err(error) = client.send(method.clone(), path, body.as_ref()).await {
                return Err(Stopped {
                    done,
                    total: plan.changes.len(),
                    failed: change.to_string(),
                    error,
                });
            }
        }
    }
    on_change(plan.changes.len(), plan.changes.len());
    Ok(())
}
