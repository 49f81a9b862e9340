//! The changes to an application's endpoints, and to the operational webhook endpoints.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::client::{Client, RemoteError, segment};
use super::plan::{
    Action, Change, Plan, by_uid, change, differing, endpoint_body, headers_differ, id_of, sorted,
};
use super::spec::{AppSpec, EndpointSpec, OperationalSpec};

/// What the file says of an endpoint (or operational endpoint) that exists.
struct Wanted<'a> {
    uid: &'a str,
    body: &'a Json,
    headers: &'a BTreeMap<String, String>,
    secret: Option<&'a str>,
}

/// The calls that bring the existing endpoint at `path` to `wanted`: a PUT when `fields`
/// (those of the body that differ) is not empty, its headers and its secret when they
/// differ. Counted unchanged when there is nothing to do.
async fn plan_update(
    client: &Client,
    path: &str,
    wanted: Wanted<'_>,
    mut fields: Vec<String>,
    mut update: Change,
    plan: &mut Plan,
) -> Result<(), RemoteError> {
    if !fields.is_empty() {
        let mut put = wanted.body.clone();
        put["uid"] = json!(wanted.uid);
        update = update.call(Method::PUT, path.to_owned(), Some(put));
    }
    let headers = client.get(&format!("{path}/headers")).await?;
    if headers_differ(wanted.headers, headers.as_ref()) {
        fields.push("headers".into());
        update = update.call(
            Method::PUT,
            format!("{path}/headers"),
            Some(json!({ "headers": wanted.headers })),
        );
    }
    if let Some(secret) = wanted.secret {
        let now = client.get(&format!("{path}/secret")).await?;
        if now.as_ref().and_then(|s| s.get("key")) != Some(&json!(secret)) {
            fields.push("secret".into());
            update = update.call(
                Method::POST,
                format!("{path}/secret/rotate"),
                Some(json!({ "key": secret })),
            );
        }
    }
    if fields.is_empty() {
        plan.unchanged += 1;
    } else {
        update.fields = fields;
        plan.changes.push(update);
    }
    Ok(())
}

/// Plans `app`'s endpoints; `exists`: whether the application is in hookd already (when it
/// is not, every endpoint is created after it).
pub async fn plan_app(
    client: &Client,
    app: &AppSpec,
    wanted: &[EndpointSpec],
    exists: bool,
    prune: bool,
    plan: &mut Plan,
) -> Result<(), RemoteError> {
    let base = format!("/api/v1/app/{}/endpoint", segment(&app.uid));
    let (current, without_uid) = if exists {
        by_uid(client.list(&base, "").await?)
    } else {
        Default::default()
    };
    for ep in wanted {
        let id = format!("{}/{}", app.uid, ep.uid);
        let body = endpoint_body(ep);
        let path = format!("{base}/{}", segment(&ep.uid));
        let Some(now) = current.get(&ep.uid) else {
            let mut create = body.clone();
            create["uid"] = json!(ep.uid);
            create["headers"] = json!(ep.headers);
            create["secret"] = json!(ep.secret);
            plan.changes
                .push(change(Action::Create, "endpoint", id, Vec::new()).call(
                    Method::POST,
                    base.clone(),
                    Some(create),
                ));
            continue;
        };
        let fields = differing(&body, now);
        let update = change(Action::Update, "endpoint", id, Vec::new());
        let wanted = Wanted {
            uid: &ep.uid,
            body: &body,
            headers: &ep.headers,
            secret: ep.secret.as_deref(),
        };
        plan_update(client, &path, wanted, fields, update, plan).await?;
    }
    if prune {
        let listed: Vec<&str> = wanted.iter().map(|e| e.uid.as_str()).collect();
        for ep in gone(&listed, &current, &without_uid) {
            let id = ep.get("id").and_then(Json::as_str).unwrap_or_default();
            plan.changes.push(
                change(
                    Action::Delete,
                    "endpoint",
                    format!("{}/{}", app.uid, id_of(ep)),
                    Vec::new(),
                )
                .call(Method::DELETE, format!("{base}/{}", segment(id)), None),
            );
        }
    }
    Ok(())
}

pub(super) async fn operational(
    client: &Client,
    wanted: &[OperationalSpec],
    prune: bool,
    plan: &mut Plan,
) -> Result<(), RemoteError> {
    const BASE: &str = "/api/v1/operational-webhook/endpoint";
    let (current, without_uid) = by_uid(client.list(BASE, "").await?);
    for ep in wanted {
        let body = json!({
            "url": ep.url,
            "description": ep.description,
            "disabled": ep.disabled,
            "throttleRate": ep.throttle_rate,
            "eventTypes": sorted(&ep.event_types),
            "metadata": ep.metadata,
        });
        let path = format!("{BASE}/{}", segment(&ep.uid));
        let Some(now) = current.get(&ep.uid) else {
            let mut create = body.clone();
            create["uid"] = json!(ep.uid);
            create["headers"] = json!(ep.headers);
            create["secret"] = json!(ep.secret);
            plan.changes.push(
                change(
                    Action::Create,
                    "operationalEndpoint",
                    ep.uid.clone(),
                    Vec::new(),
                )
                .call(Method::POST, BASE.into(), Some(create)),
            );
            continue;
        };
        let fields = differing(&body, now);
        let update = change(
            Action::Update,
            "operationalEndpoint",
            ep.uid.clone(),
            Vec::new(),
        );
        let wanted = Wanted {
            uid: &ep.uid,
            body: &body,
            headers: &ep.headers,
            secret: ep.secret.as_deref(),
        };
        plan_update(client, &path, wanted, fields, update, plan).await?;
    }
    if prune {
        let listed: Vec<&str> = wanted.iter().map(|e| e.uid.as_str()).collect();
        for ep in gone(&listed, &current, &without_uid) {
            let id = ep.get("id").and_then(Json::as_str).unwrap_or_default();
            plan.changes.push(
                change(Action::Delete, "operationalEndpoint", id_of(ep), Vec::new()).call(
                    Method::DELETE,
                    format!("{BASE}/{}", segment(id)),
                    None,
                ),
            );
        }
    }
    Ok(())
}

/// What a prune deletes: the existing endpoints whose uid the file does not list, and those
/// without a uid (a file cannot name them), in id order.
fn gone<'a>(
    listed: &[&str],
    current: &'a std::collections::HashMap<String, Json>,
    without_uid: &'a [Json],
) -> Vec<&'a Json> {
    let mut gone: Vec<&Json> = current
        .iter()
        .filter(|(uid, _)| !listed.contains(&uid.as_str()))
        .map(|(_, e)| e)
        .chain(without_uid.iter())
        .collect();
    gone.sort_by_key(|e| id_of(e));
    gone
}
