//! The endpoints and operational endpoints of the declarative file, checked.

use std::collections::BTreeMap;

use super::fields::{Errors, Fields, secret};
use super::node::Node;
use super::spec::{Ctx, EndpointSpec, OperationalSpec, throttle, uid};
use crate::domain::{
    Channel, DeliveryOrder, EndpointHeaders, EndpointUrl, EventTypeName, SignatureScheme,
    SignatureSpec,
};

/// The most channels an endpoint may filter on (as the API).
const MAX_CHANNELS: usize = 10;

/// The fields endpoints and operational endpoints share.
struct Common {
    uid: Option<String>,
    url: Option<String>,
    description: String,
    disabled: bool,
    throttle_rate: Option<u16>,
    event_types: Option<Vec<String>>,
    metadata: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    secret: Option<String>,
    secret_error: bool,
}

fn common(f: &Fields<'_>, ctx: &Ctx<'_>, errors: &mut Errors) -> Common {
    let uid = uid(f, errors);
    let url = f.required_str("url", errors).and_then(|u| {
        let line = f.get("url").map_or(f.line, |n| n.line);
        match EndpointUrl::parse(u) {
            Ok(url) if ctx.https_only && !url.is_https() => {
                errors.add(line, &f.at("url"), "must be https:// (https_only is on)");
                None
            }
            Ok(url) => Some(url.as_str().to_owned()),
            Err(e) => {
                errors.add(line, &f.at("url"), e.to_string());
                None
            }
        }
    });
    let event_types = f.strings("eventTypes", errors).map(|names| {
        names
            .into_iter()
            .filter_map(|(line, n)| match EventTypeName::parse(n) {
                Ok(_) => Some(n.to_owned()),
                Err(e) => {
                    errors.add(line, &f.at("eventTypes"), format!("{n:?} {e}"));
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let headers = f.string_map("headers", errors);
    if let Err(e) = EndpointHeaders::parse(headers.clone()) {
        let line = f.get("headers").map_or(f.line, |n| n.line);
        errors.add(line, &f.at("headers"), e.to_string());
    }
    let before = errors.0.len();
    let secret = f.get("secret").and_then(|node| {
        let text = f.str("secret", errors)?;
        secret(text, node.line, &f.at("secret"), ctx.source, errors)
    });
    Common {
        uid,
        url,
        description: f.str("description", errors).unwrap_or_default().to_owned(),
        disabled: f.bool("disabled", errors),
        throttle_rate: throttle(f, errors),
        event_types: event_types.filter(|e| !e.is_empty()),
        metadata: f.string_map("metadata", errors),
        headers,
        secret,
        secret_error: errors.0.len() > before,
    }
}

pub(super) fn endpoint(
    node: &Node,
    path: &str,
    ctx: &Ctx<'_>,
    errors: &mut Errors,
) -> Option<EndpointSpec> {
    let allowed = [
        "uid",
        "url",
        "description",
        "disabled",
        "throttleRate",
        "eventTypes",
        "channels",
        "metadata",
        "headers",
        "secret",
        "signature",
        "autoDisableAfterFailures",
        "autoDisableAfterSecs",
        "ordering",
    ];
    let f = Fields::of(node, path, &allowed, errors)?;
    let c = common(&f, ctx, errors);
    let channels = f.strings("channels", errors).map(|names| {
        let line = f.get("channels").map_or(f.line, |n| n.line);
        if names.len() > MAX_CHANNELS {
            errors.add(
                line,
                &f.at("channels"),
                format!("at most {MAX_CHANNELS} channels"),
            );
        }
        names
            .into_iter()
            .filter_map(|(line, n)| match Channel::parse(n) {
                Ok(_) => Some(n.to_owned()),
                Err(e) => {
                    errors.add(line, &f.at("channels"), format!("{n:?} {e}"));
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let signature = match f.get("signature") {
        None => Some(SignatureScheme::Standard.spec()),
        Some(node) => signature(node, &f.at("signature"), errors),
    };
    if let Some(spec) = &signature {
        scheme_headers(&f, spec, &c.headers, errors);
    }
    let failures = f.number("autoDisableAfterFailures", i32::MAX as u64, errors);
    let secs = f.number("autoDisableAfterSecs", u64::from(u32::MAX), errors);
    let ordering = match f.str("ordering", errors) {
        None => Some(DeliveryOrder::Concurrent),
        Some(text) => match DeliveryOrder::try_from(text.to_owned()) {
            Ok(ordering) => Some(ordering),
            Err(e) => {
                let line = f.get("ordering").map_or(f.line, |n| n.line);
                errors.add(line, &f.at("ordering"), e);
                None
            }
        },
    };
    if c.secret_error {
        return None;
    }
    Some(EndpointSpec {
        uid: c.uid?,
        url: c.url?,
        description: c.description,
        disabled: c.disabled,
        throttle_rate: c.throttle_rate,
        event_types: c.event_types,
        channels: channels.filter(|c| !c.is_empty()),
        metadata: c.metadata,
        headers: c.headers,
        secret: c.secret,
        signature: signature?,
        auto_disable_after_failures: failures.map(|n| n as u32),
        auto_disable_after_secs: secs.map(|n| n as u32),
        ordering: ordering?,
    })
}

fn signature(node: &Node, path: &str, errors: &mut Errors) -> Option<SignatureSpec> {
    let allowed = ["scheme", "header", "prefix", "encoding", "timestampHeader"];
    let f = Fields::of(node, path, &allowed, errors)?;
    let spec = SignatureSpec {
        scheme: f.required_str("scheme", errors)?.to_owned(),
        header: f.str("header", errors).map(str::to_owned),
        prefix: f.str("prefix", errors).map(str::to_owned),
        encoding: f.str("encoding", errors).map(str::to_owned),
        timestamp_header: f.str("timestampHeader", errors).map(str::to_owned),
    };
    match SignatureScheme::parse(spec) {
        Ok(scheme) => Some(scheme.spec()),
        Err(e) => {
            let line = f.get(e.field).map_or(f.line, |n| n.line);
            errors.add(line, &f.at(e.field), e.to_string());
            None
        }
    }
}

pub(super) fn operational(
    node: &Node,
    path: &str,
    ctx: &Ctx<'_>,
    errors: &mut Errors,
) -> Option<OperationalSpec> {
    let allowed = [
        "uid",
        "url",
        "description",
        "disabled",
        "throttleRate",
        "eventTypes",
        "metadata",
        "headers",
        "secret",
    ];
    let f = Fields::of(node, path, &allowed, errors)?;
    let c = common(&f, ctx, errors);
    scheme_headers(&f, &SignatureScheme::Standard.spec(), &c.headers, errors);
    if c.secret_error {
        return None;
    }
    Some(OperationalSpec {
        uid: c.uid?,
        url: c.url?,
        description: c.description,
        disabled: c.disabled,
        throttle_rate: c.throttle_rate,
        event_types: c.event_types,
        metadata: c.metadata,
        headers: c.headers,
        secret: c.secret,
    })
}

/// As the API: a custom header may not be one the signature scheme sets itself.
fn scheme_headers(
    f: &Fields<'_>,
    spec: &SignatureSpec,
    headers: &BTreeMap<String, String>,
    errors: &mut Errors,
) {
    let (Ok(scheme), Ok(headers)) = (
        SignatureScheme::parse(spec.clone()),
        EndpointHeaders::parse(headers.clone()),
    ) else {
        return;
    };
    if let Some(name) = scheme.header_names().find(|name| headers.contains(name)) {
        let line = f.get("headers").map_or(f.line, |n| n.line);
        errors.add(
            line,
            &f.at("headers"),
            format!(
                "{name} is the header the signature scheme sets; a custom header cannot use it"
            ),
        );
    }
}
