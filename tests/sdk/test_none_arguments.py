"""`None` for every optional argument: what application code passes all the time.

The SDK sends a field the caller set to `None` as JSON `null` (and leaves out options that
are `None`). Each test calls the methods the other SDK tests call, with every optional
field and option set to `None`, and reads back what hookd made of it: the documented
default on creation, "leave unchanged" on PATCH for fields that cannot be cleared, and
"clear" for those that can (uid, throttle rate, filters, schemas).
"""

import dataclasses

from svix.api import (
    ApplicationCreateOptions,
    ApplicationIn,
    ApplicationListOptions,
    ApplicationPatch,
    EndpointHeadersIn,
    EndpointHeadersPatchIn,
    EndpointIn,
    EndpointListOptions,
    EndpointPatch,
    EndpointSecretRotateIn,
    EndpointUpsertIn,
    EventTypeDeleteOptions,
    EventTypeIn,
    EventTypeListOptions,
    EventTypePatch,
    EventTypeUpsertIn,
    MessageAttemptListAttemptedDestinationsOptions,
    MessageAttemptListByMsgOptions,
    MessageCreateOptions,
    MessageGetOptions,
    MessageIn,
    MessageListOptions,
)
from svix.api.endpoint import EndpointRotateSecretOptions


def all_none(model, **given):
    """`model` built from `given`, with every other field explicitly set to `None`."""
    unset = {name: None for name in model.model_fields if name not in given}
    assert unset, f"{model.__name__} has no optional field"
    return model(**given, **unset)


def options_none(options):
    """An options object with every option `None`."""
    return options(**{f.name: None for f in dataclasses.fields(options)})


def test_applications_with_none(client, run_id):
    app = client.application.create(
        all_none(ApplicationIn, name=f"none {run_id}"), options_none(ApplicationCreateOptions)
    )
    try:
        assert (app.uid, app.throttle_rate, app.metadata) == (None, None, {})

        uid = f"none-{run_id}"
        got = client.application.get_or_create(
            all_none(ApplicationIn, name="goc", uid=uid), options_none(ApplicationCreateOptions)
        )
        assert (got.uid, got.metadata) == (uid, {})

        put = client.application.upsert(uid, all_none(ApplicationIn, name="put"))
        assert (put.id, put.uid, put.name, put.metadata) == (got.id, uid, "put", {})

        client.application.patch(got.id, ApplicationPatch(metadata={"k": "v"}, throttle_rate=5))
        patched = client.application.patch(got.id, all_none(ApplicationPatch))
        # name and metadata cannot be null: left as they are; uid and throttleRate cleared.
        assert (patched.name, patched.metadata) == ("put", {"k": "v"})
        assert (patched.uid, patched.throttle_rate) == (None, None)
        assert client.application.get(got.id) == patched
        client.application.delete(got.id)

        listed = client.application.list(options_none(ApplicationListOptions))
        assert app.id in [a.id for a in listed.data] or not listed.done
    finally:
        client.application.delete(app.id)


def test_event_types_with_none(client, run_id):
    name = f"none.{run_id}"
    created = client.event_type.create(all_none(EventTypeIn, name=name, description="d"))
    try:
        assert (created.archived, created.deprecated) == (False, False)
        assert (created.schemas, created.feature_flags, created.group_name) == (None, None, None)

        schemas = {"1": {"type": "object"}}
        client.event_type.upsert(
            name, EventTypeUpsertIn(description="d", schemas=schemas, group_name="g")
        )
        put = client.event_type.upsert(name, all_none(EventTypeUpsertIn, description="put"))
        assert (put.description, put.archived, put.deprecated, put.schemas) == (
            "put", False, False, None,
        )

        client.event_type.patch(name, EventTypePatch(schemas=schemas, group_name="g"))
        patched = client.event_type.patch(name, all_none(EventTypePatch))
        # description, archived and deprecated are left; schemas, flags and group cleared.
        assert (patched.description, patched.archived, patched.deprecated) == ("put", False, False)
        assert (patched.schemas, patched.feature_flags, patched.group_name) == (None, None, None)

        listed = client.event_type.list(options_none(EventTypeListOptions))
        assert listed.data is not None
        client.event_type.delete(name, options_none(EventTypeDeleteOptions))
        assert client.event_type.get(name).archived
    finally:
        client.event_type.delete(name, EventTypeDeleteOptions(expunge=True))


def test_endpoints_with_none(client, run_id, make_app):
    app = make_app(f"none endpoints {run_id}")
    url = "https://example.com/hookd-sdk/none"
    ep = client.endpoint.create(app.id, all_none(EndpointIn, url=url))
    assert (ep.description, ep.disabled, ep.metadata) == ("", False, {})
    assert (ep.uid, ep.throttle_rate, ep.event_types, ep.channels) == (None, None, None, None)
    assert client.endpoint.get_secret(app.id, ep.id).key.startswith("whsec_")
    assert client.endpoint.get_headers(app.id, ep.id).headers == {}

    uid = f"none-ep-{run_id}"
    put = client.endpoint.upsert(app.id, uid, all_none(EndpointUpsertIn, url=url))
    assert (put.uid, put.description, put.disabled, put.metadata) == (uid, "", False, {})

    client.endpoint.patch(
        app.id, put.id, EndpointPatch(description="kept", channels=["c"], throttle_rate=3)
    )
    patched = client.endpoint.patch(app.id, put.id, all_none(EndpointPatch))
    # url, description, disabled and metadata are left; uid, rate and filters cleared.
    assert (patched.url, patched.description, patched.disabled) == (url, "kept", False)
    assert (patched.uid, patched.throttle_rate, patched.channels) == (None, None, None)
    assert client.endpoint.get(app.id, put.id) == patched

    listed = client.endpoint.list(app.id, options_none(EndpointListOptions))
    assert {e.id for e in listed.data} == {ep.id, put.id}

    client.endpoint.set_headers(app.id, ep.id, EndpointHeadersIn(headers={"X-A": "1"}))
    client.endpoint.patch_headers(
        app.id, ep.id, all_none(EndpointHeadersPatchIn, headers={"X-B": "2"})
    )
    assert client.endpoint.get_headers(app.id, ep.id).headers == {"X-A": "1", "X-B": "2"}

    before = client.endpoint.get_secret(app.id, ep.id).key
    rotated = client.endpoint.rotate_secret(
        app.id, ep.id, all_none(EndpointSecretRotateIn), options_none(EndpointRotateSecretOptions)
    )
    assert rotated.key != before
    assert client.endpoint.get_secret(app.id, ep.id).key == rotated.key
    client.endpoint.delete(app.id, put.id)


def test_messages_with_none(client, run_id, make_app):
    app = make_app(f"none messages {run_id}")
    client.endpoint.create(app.id, EndpointIn(url="https://example.com/hookd-sdk/none-msg"))
    msg = client.message.create(
        app.id,
        all_none(MessageIn, event_type="none.sent", payload={"n": 1}),
        options_none(MessageCreateOptions),
    )
    assert (msg.event_id, msg.channels) == (None, None)
    got = client.message.get(app.id, msg.id, options_none(MessageGetOptions))
    # (The SDK sends `with_content=false` when the option is None: no payload comes back.)
    assert (got.id, got.event_type, got.event_id) == (msg.id, "none.sent", None)
    listed = client.message.list(app.id, options_none(MessageListOptions))
    assert [m.id for m in listed.data] == [msg.id]
    attempts = client.message_attempt.list_by_msg(
        app.id, msg.id, options_none(MessageAttemptListByMsgOptions)
    )
    assert attempts.data is not None
    destinations = client.message_attempt.list_attempted_destinations(
        app.id, msg.id, options_none(MessageAttemptListAttemptedDestinationsOptions)
    )
    assert len(destinations.data) == 1
