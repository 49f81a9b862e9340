"""Schemathesis hooks for the conformance run (tests/conformance/run.sh).

Each hook narrows generated input only where a document cannot state a rule that both the
reference Svix server and hookd apply, so a refusal there would be right, not a finding.
Nothing here makes a failing response pass.
"""

import base64
import datetime
import hashlib
import re

import schemathesis
from hypothesis import strategies as st

# JSON Schema's `uri` format admits any scheme (`mailto:x`, `urn:a`), but webhooks are
# delivered over HTTP: both servers refuse other schemes with a 422. Endpoint URLs are the
# only `uri` strings in either document's requests.
schemathesis.openapi.format(
    "uri",
    st.from_regex(r"\Ahttps?://[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}(/[A-Za-z0-9._~-]{0,20}){0,3}\Z"),
)

# An HTTP header name is a token; a value has no control characters. The documents type
# custom headers as a free-form string map, which would have hookd send headers HTTP cannot
# carry. hookd also keeps the headers it sets itself (signatures, content type, ...) from
# being overridden: both are 422s that name the header, as on the reference server.
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]")
_NOT_VISIBLE = re.compile(r"[^\x20-\x7e]")
_RESERVED = {
    "connection", "content-length", "content-type", "host", "keep-alive", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "webhook-id",
    "webhook-signature", "webhook-timestamp", "svix-id", "svix-signature", "svix-timestamp",
}


def _header_name(name):
    name = _NOT_TOKEN.sub("", str(name)) or "x"
    return f"x-{name}" if name.lower() in _RESERVED else name


def _header_value(value):
    return _NOT_VISIBLE.sub("", value).strip() if isinstance(value, str) else value


# The secret pattern `^(whsec_)?[a-zA-Z0-9+/=]{32,100}$` admits strings that are not base64
# (`=` in the middle, a length not a multiple of 4), which both servers refuse. A generated
# secret is replaced by a valid one of the same length class, derived from it.
def _secret(value):
    key = value.removeprefix("whsec_")
    size = max(24, min(75, len(key) * 3 // 4))
    raw = (hashlib.sha256(key.encode()).digest() * 3)[:size]
    return "whsec_" + base64.b64encode(raw).decode()


# hookd's `signature` (an endpoint's signature scheme) is one object whose settings depend
# on its `scheme`, and whose header names may not be ones hookd or the connection sets, nor
# each other or one of the endpoint's custom headers: rules its field descriptions state
# and a single schema cannot. Settings of another scheme are dropped and clashing names
# made distinct; every other value is sent as generated.
_SCHEME_SETTINGS = {
    "standard": set(),
    "stripe": {"header"},
    "hmac-sha256": {"header", "prefix", "encoding", "timestampHeader"},
}
_FREE_FOR_SIGNATURES = {"webhook-signature", "webhook-timestamp", "svix-signature", "svix-timestamp"}


def _signature(signature, custom_headers):
    if not isinstance(signature, dict) or signature.get("scheme") not in _SCHEME_SETTINGS:
        return signature
    allowed = _SCHEME_SETTINGS[signature["scheme"]]
    signature = {k: v for k, v in signature.items() if k == "scheme" or k in allowed}
    taken = {str(name).lower() for name in (custom_headers or {})}
    for key in ("header", "timestampHeader"):
        name = signature.get(key)
        if not isinstance(name, str):
            continue
        if name.lower() in _RESERVED - _FREE_FOR_SIGNATURES or name.lower() in taken:
            name = f"x-{key.lower()}-{name}"
        taken.add(name.lower())
        signature[key] = name
    return signature


# hookd's `deliverAt` (a date-time pattern in its document) must be a real date no further
# ahead than the server's horizon (90 days by default), relative to now: a rule no document
# can state. A generated one that is not is replaced by a time an hour from now.
def _deliver_at(value):
    try:
        at = datetime.datetime.fromisoformat(str(value).replace("z", "Z"))
    except ValueError:
        at = None
    now = datetime.datetime.now(datetime.timezone.utc)
    if at is not None:
        aware = at if at.tzinfo else at.replace(tzinfo=datetime.timezone.utc)
        if aware <= now + datetime.timedelta(days=89):
            return value
    return (now + datetime.timedelta(hours=1)).isoformat()


# hookd's `retryPolicy` (endpoints, event types) has rules across its fields that its field
# descriptions state and a schema cannot: not both `schedule` and `exponential`, `maxDelay`
# not below `base`, `maxTimeout` not below `timeout`. A generated policy breaking one is
# brought within it; every other value is sent as generated (tests/it/retry_policies.rs
# covers the refusals).
def _retry_policy(policy):
    if not isinstance(policy, dict):
        return policy
    if policy.get("schedule") is not None and policy.get("exponential") is not None:
        del policy["exponential"]
    exponential = policy.get("exponential")
    if isinstance(exponential, dict):
        base, most = exponential.get("base"), exponential.get("maxDelay")
        if isinstance(base, int) and isinstance(most, int) and most < base:
            exponential["maxDelay"] = base
    first, most = policy.get("timeout"), policy.get("maxTimeout")
    if isinstance(first, int) and isinstance(most, int) and most < first:
        policy["maxTimeout"] = first
    return policy


@schemathesis.hook
def map_body(context, body):
    if not isinstance(body, dict):
        return body
    headers = body.get("headers")
    if isinstance(headers, dict):
        body["headers"] = {_header_name(k): _header_value(v) for k, v in headers.items()}
    if "signature" in body:
        body["signature"] = _signature(body["signature"], body.get("headers"))
    if "retryPolicy" in body:
        body["retryPolicy"] = _retry_policy(body["retryPolicy"])
    # The SDK document says the two retention fields are mutually exclusive (in prose, which
    # a generator does not read); hookd refuses both at once with a 422.
    if body.get("payloadRetentionPeriod") is not None and body.get("payloadRetentionHours") is not None:
        del body["payloadRetentionHours"]
    path = context.operation.path
    if isinstance(body.get("secret"), str):
        body["secret"] = _secret(body["secret"])
    if path.endswith("/secret/rotate") and isinstance(body.get("key"), str):
        body["key"] = _secret(body["key"])
    if isinstance(body.get("deliverAt"), str):
        body["deliverAt"] = _deliver_at(body["deliverAt"])
    if path.startswith("/api/v1/auth/app-portal-access/"):
        body.pop("featureFlags", None)
    return body


# The reference document leaves out the `{app_id}` path parameter of four operations
# (GET, PATCH and DELETE /api/v1/app/{app_id}, GET /api/v1/app/{app_id}/msg), so no request
# can be built for them. They get the declaration the document gives that parameter
# elsewhere, so that they run.
#
# It also types counts as `integer` with `format: uint16` or `uint32`, which OpenAPI's format
# registry defines as those ranges, but JSON Schema validators ignore: both servers refuse a
# `throttleRate` of 70000 (it does not fit). The ranges are stated as `maximum`s.
_INTEGER_RANGES = {"uint8": 2**8 - 1, "uint16": 2**16 - 1, "uint32": 2**32 - 1, "int32": 2**31 - 1}


def _state_integer_ranges(node):
    if isinstance(node, dict):
        if node.get("type") == "integer" and node.get("format") in _INTEGER_RANGES:
            node.setdefault("maximum", _INTEGER_RANGES[node["format"]])
        for value in node.values():
            _state_integer_ranges(value)
    elif isinstance(node, list):
        for value in node:
            _state_integer_ranges(value)


def _path_parameters(operation):
    return [p for p in operation.get("parameters", []) if p.get("in") == "path"]


# hookd's `deliverAt` must be a real date no further ahead than the server's horizon (90
# days by default), relative to now: a rule no document can state, and the coverage phase
# generates from the pattern without the body hook above. hookd's own document is given a
# pattern of real dates in the past (which deliver at once).
_PAST_DATE_TIME = r"^(19[7-9]\d|20[01]\d)-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])T([01]\d|2[0-3]):[0-5]\d:[0-5]\dZ$"


def _narrow_deliver_at(raw_schema):
    message_in = raw_schema.get("components", {}).get("schemas", {}).get("MessageIn", {})
    if "deliverAt" in message_in.get("properties", {}):
        message_in["properties"]["deliverAt"] = {
            "type": ["string", "null"],
            "pattern": _PAST_DATE_TIME,
        }


# The coverage phase builds requests from the schemas alone, without the body hook, so the
# rules the hook applies to `signature` and to the two retention fields are also stated in
# hookd's loaded document: `signature` as one object per scheme with that scheme's settings
# only (header names kept apart from each other and from what hookd sets by their
# prefixes, in lower case as hookd shows them), and `payloadRetentionHours` left out, since
# it may not come with `payloadRetentionPeriod` (tests/it/retention.rs covers it).
_HEADER = {
    "type": ["string", "null"],
    # Or a scheme's default, which hookd shows when none is given.
    "pattern": "^(x-sig-[a-z0-9-]{0,20}|x-webhook-signature|webhook-signature)$",
}
_TIMESTAMP_HEADER = {"type": ["string", "null"], "pattern": "^x-ts-[a-z0-9-]{0,20}$"}


def _scheme(name, **settings):
    return {
        "type": "object",
        "properties": {"scheme": {"type": "string", "enum": [name]}, **settings},
        "required": ["scheme"],
        "additionalProperties": False,
    }


def _narrow_signature_and_retention(raw_schema):
    schemas = raw_schema.get("components", {}).get("schemas", {})
    if "SignatureSpec" in schemas:
        spec = schemas["SignatureSpec"]
        props = spec.get("properties", {})
        schemas["SignatureSpec"] = {
            "oneOf": [
                _scheme("standard"),
                _scheme("stripe", header=_HEADER),
                _scheme(
                    "hmac-sha256",
                    header=_HEADER,
                    prefix=props.get("prefix", {"type": ["string", "null"]}),
                    encoding=props.get("encoding", {"type": ["string", "null"]}),
                    timestampHeader=_TIMESTAMP_HEADER,
                ),
            ],
        }
    message_in = schemas.get("MessageIn", {})
    if "payloadRetentionPeriod" in message_in.get("properties", {}):
        message_in["properties"].pop("payloadRetentionHours", None)


# Rules of the replay and dead-letter routes no schema states: a dead-letter `iterator` is a
# `dlv_` id from an earlier page, `tag` is refused (hookd messages have no tags) as is a
# bulk replay of `status` 3, and a
# requeue takes ids or filters, not both. The generated requests leave those fields out
# (tests/it/replay.rs covers each refusal).
def _narrow_replays(raw_schema):
    schemas = raw_schema.get("components", {}).get("schemas", {})
    bulk_replay = schemas.get("BulkReplayIn", {}).get("properties", {})
    bulk_replay.pop("tag", None)
    # `status: 3` (sending) is refused too: its attempt is in flight.
    bulk_replay.pop("status", None)
    schemas.get("DeadLetterRequeueIn", {}).get("properties", {}).pop("ids", None)
    for template, item in raw_schema.get("paths", {}).items():
        if template.endswith("/dead-letter"):
            for operation in item.values():
                if isinstance(operation, dict) and "parameters" in operation:
                    operation["parameters"] = [
                        p for p in operation["parameters"] if p.get("name") != "iterator"
                    ]


# The OpenAPI import takes exactly one of `spec` and `specRaw`, and a document with a
# `webhooks` object whose names are event type names and whose schemas compile: rules no
# schema states. The generated requests send `spec` with an empty `webhooks`
# (tests/it/event_type_import.rs covers the refusals).
def _narrow_import(raw_schema):
    schemas = raw_schema.get("components", {}).get("schemas", {})
    import_in = schemas.get("EventTypeImportOpenApiIn")
    if import_in is None:
        return
    import_in.setdefault("properties", {}).pop("specRaw", None)
    import_in["properties"]["spec"] = {
        "type": "object",
        "required": ["webhooks"],
        "properties": {"webhooks": {"type": "object", "maxProperties": 0}},
    }
    import_in["required"] = ["spec"]


# The same rules of `retryPolicy`, stated in hookd's loaded document for the phases that
# generate from it directly: a policy has a schedule or exponential delays, not both, and
# `maxTimeout` and `maxDelay` (bounded below by other fields) take only their greatest
# value, which every `timeout` and `base` is under. (`anyOf`: a policy with neither, `{}`,
# is both variants at once.)
def _narrow_retry_policy(raw_schema):
    schemas = raw_schema.get("components", {}).get("schemas", {})
    spec = schemas.get("RetryPolicySpec")
    if spec and "properties" in spec:
        props = dict(spec["properties"])
        props["maxTimeout"] = {"type": "integer", "const": 60}
        variant = lambda without: {
            "type": "object",
            "properties": {k: v for k, v in props.items() if k != without},
            "additionalProperties": False,
        }
        schemas["RetryPolicySpec"] = {"anyOf": [variant("exponential"), variant("schedule")]}
    exponential = schemas.get("ExponentialSpec", {})
    if "maxDelay" in exponential.get("properties", {}):
        exponential["properties"]["maxDelay"] = {"type": "integer", "const": 2592000}


# Tokens: hookd has no feature flags and refuses `featureFlags` on app portal access (422)
# rather than ignore it, and a named token's `expiresAt` must be in the future: a rule no
# document can state. The generated requests leave `featureFlags` out and give tokens a
# real date decades ahead (tests/it/tokens.rs covers both refusals).
_FUTURE_DATE_TIME = r"^(20[4-9]\d)-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])T([01]\d|2[0-3]):[0-5]\d:[0-5]\dZ$"


def _narrow_tokens(raw_schema):
    schemas = raw_schema.get("components", {}).get("schemas", {})
    # A monitor takes `maxSilence` or `deadline` (a cron schedule), exactly one: the
    # generated monitors take `maxSilence` (tests/it/monitors.rs covers deadlines and the
    # refusals).
    for name in ("MonitorIn", "MonitorUpdate"):
        monitor_in = schemas.get(name)
        if monitor_in and "deadline" in monitor_in.get("properties", {}):
            monitor_in["properties"].pop("deadline")
            monitor_in["properties"]["maxSilence"] = {"type": "integer", "minimum": 1, "maximum": 31622400}
            monitor_in["required"] = sorted(set(monitor_in.get("required", [])) | {"maxSilence"})
    schemas.get("AppPortalAccessIn", {}).get("properties", {}).pop("featureFlags", None)
    token_in = schemas.get("ApiTokenIn", {}).get("properties", {})
    if "expiresAt" in token_in:
        token_in["expiresAt"] = {"type": ["string", "null"], "pattern": _FUTURE_DATE_TIME}


# Change detection (hookd's entity routes): a rule's fields depend on its `when` (`minAbs` and
# `minPct` belong to `threshold` rules, which need one of them; `from` and `to` to
# `transition` rules), and `field` is a JSON pointer: rules its field descriptions state and
# one object schema cannot. Each generated rule is one of the four kinds with its own fields,
# and a JSON pointer from a few that exercise escapes. A history `iterator` is a version
# number from an earlier page. (tests/it/entities.rs covers each refusal.)
def _narrow_entities(raw_schema):
    schemas = raw_schema.get("components", {}).get("schemas", {})
    rule = schemas.get("EntityRule")
    if rule and "properties" in rule:
        props = rule["properties"]
        pointer = {"type": "string", "enum": ["", "/price", "/a~1b/0", "/stock~0status"]}
        bound = {"type": "number", "minimum": 0}

        def variant(when, extra, required=()):
            properties = {"eventType": props["eventType"], "field": pointer, "when": {"const": when}}
            properties.update(extra)
            return {
                "type": "object",
                "properties": properties,
                "required": ["eventType", "field", "when", *required],
                "additionalProperties": False,
            }

        schemas["EntityRule"] = {"anyOf": [
            variant("changed", {}),
            variant("created", {}),
            variant("threshold", {"minAbs": bound, "minPct": bound}, ["minPct"]),
            variant("threshold", {"minAbs": bound, "minPct": bound}, ["minAbs"]),
            variant("transition", {"from": props.get("from", {}), "to": props.get("to", {})}),
        ]}
    for template, item in raw_schema.get("paths", {}).items():
        if template.endswith("/history"):
            for operation in item.values():
                if isinstance(operation, dict) and "parameters" in operation:
                    operation["parameters"] = [
                        p for p in operation["parameters"] if p.get("name") != "iterator"
                    ]


# Ingest sources: `config` holds what the source's `type` needs (a `secret` for most, a
# schedule and a JSON-object payload for `cron`): one object schema per type that the
# document's single `config` object cannot state. Generated sources are of four types with
# their own configs; a monitor watches an application (`source` names a source that must
# exist, and only one of the two may be given). tests/it/ingest.rs covers every type and
# each refusal.
def _narrow_ingest(raw_schema):
    schemas = raw_schema.get("components", {}).get("schemas", {})
    source_in = schemas.get("IngestSourceIn")
    if source_in and "properties" in source_in:
        common = {k: v for k, v in source_in["properties"].items() if k not in ("type", "config")}
        secret = {"type": "string", "minLength": 1, "maxLength": 64}

        def variant(kind, config):
            return {
                "type": "object",
                "properties": {**common, "type": {"const": kind}, "config": config},
                "required": ["name", "type", "config"],
                "additionalProperties": False,
            }

        def closed(properties):
            return {
                "type": "object",
                "properties": properties,
                "required": sorted(properties),
                "additionalProperties": False,
            }

        schemas["IngestSourceIn"] = {"anyOf": [
            variant("generic-webhook", closed({})),
            variant("stripe", closed({"secret": secret})),
            variant("hookd-bearer", closed({"token": secret})),
            variant("cron", closed({
                "schedule": {"enum": ["0 2 * * *", "*/5 * * * *"]},
                "payload": {"enum": ["{}", "{\"job\": \"crawl\"}"]},
            })),
        ]}
    for name in ("MonitorIn",):
        monitor_in = schemas.get(name)
        if monitor_in and "source" in monitor_in.get("properties", {}):
            monitor_in["properties"].pop("source")
            monitor_in["required"] = sorted(set(monitor_in.get("required", [])) | {"app"})
            monitor_in["properties"]["app"] = {"$ref": "#/components/schemas/PathKeyString"}


@schemathesis.hook
def before_load_schema(context, raw_schema):
    _narrow_ingest(raw_schema)
    _narrow_entities(raw_schema)
    _narrow_tokens(raw_schema)
    _narrow_deliver_at(raw_schema)
    _narrow_import(raw_schema)
    _narrow_retry_policy(raw_schema)
    _narrow_replays(raw_schema)
    _narrow_signature_and_retention(raw_schema)
    _state_integer_ranges(raw_schema.get("components", {}))
    _state_integer_ranges(raw_schema.get("paths", {}))
    operations = [
        (template, operation)
        for template, item in raw_schema.get("paths", {}).items()
        for method, operation in item.items()
        if method != "parameters" and isinstance(operation, dict)
    ]
    declared_anywhere = {}
    for _, operation in operations:
        for parameter in _path_parameters(operation):
            declared_anywhere.setdefault(parameter["name"], parameter)
    for template, operation in operations:
        shared = raw_schema["paths"][template].get("parameters", [])
        declared = {p.get("name") for p in _path_parameters(operation) + shared}
        for name in re.findall(r"\{([^}]+)\}", template):
            if name not in declared:
                operation.setdefault("parameters", []).append(dict(declared_anywhere[name]))
