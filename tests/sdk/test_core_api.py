"""Core-API compatibility tests: drive hookd with the official Svix Python SDK.

Each test covers one resource and only uses objects it created itself (names carry
a per-run suffix), so the suite can be rerun against the same server.
See docs/svix-sdk-notes.md for the wire contract these tests rely on.
"""

import base64
import os
import time
from datetime import datetime, timedelta

import pytest
from svix.api import (
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
    MessageCreateOptions,
    MessageGetOptions,
    MessageIn,
    MessageListOptions,
)
from svix.exceptions import HttpError

MAX_PAGES = 10_000  # guards against a server that never reports done=True


def list_all(list_page, options_cls, limit, **filters):
    """Follow `iterator` until `done`; return (all items, number of pages)."""
    items, pages, iterator = [], 0, None
    while True:
        page = list_page(options_cls(limit=limit, iterator=iterator, **filters))
        pages += 1
        assert len(page.data) <= limit, f"page larger than limit={limit}"
        items.extend(page.data)
        if page.done:
            return items, pages
        assert page.iterator, "done=False but no iterator to continue with"
        iterator = page.iterator
        assert pages < MAX_PAGES, "pagination does not terminate"


def assert_status(excinfo, status_code):
    assert excinfo.value.status_code == status_code, (
        f"expected HTTP {status_code}, got {excinfo.value.status_code}: {excinfo.value}"
    )


def assert_aware(dt: datetime):
    assert isinstance(dt, datetime) and dt.tzinfo is not None, f"not tz-aware: {dt!r}"


def random_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def lower_keys(d: dict) -> dict:
    return {k.lower(): v for k, v in d.items()}


# --------------------------------------------------------------------------- health


def test_health(client):
    client.health.get()  # raises on any non-2xx


# --------------------------------------------------------------------- applications


def test_applications(client, run_id, make_app):
    # create
    uids = [f"sdk-app-{run_id}-{i}" for i in range(7)]
    apps = [
        make_app(f"SDK app {i} {run_id}", uid, metadata={"run": run_id, "idx": str(i)})
        for i, uid in enumerate(uids)
    ]
    first = apps[0]
    assert first.id and first.id != first.uid
    assert first.name == f"SDK app 0 {run_id}"
    assert first.uid == uids[0]
    assert first.metadata == {"run": run_id, "idx": "0"}
    assert_aware(first.created_at)
    assert_aware(first.updated_at)
    assert len({a.id for a in apps}) == 7

    # a second app with the same uid is a conflict
    with pytest.raises(HttpError) as exc:
        client.application.create(ApplicationIn(name="dup", uid=uids[0]))
    assert_status(exc, 409)

    # get by id and by uid
    by_id = client.application.get(first.id)
    by_uid = client.application.get(uids[0])
    assert by_id.id == by_uid.id == first.id
    assert by_id.name == first.name and by_id.metadata == first.metadata

    # get_or_create: existing uid returns the same app, unknown uid creates one
    existing = client.application.get_or_create(ApplicationIn(name="ignored", uid=uids[0]))
    assert existing.id == first.id
    assert existing.name == first.name
    new_uid = f"sdk-app-{run_id}-goc"
    created = client.application.get_or_create(ApplicationIn(name="goc app", uid=new_uid))
    assert created.uid == new_uid and created.name == "goc app"
    assert client.application.get(new_uid).id == created.id
    apps.append(created)
    client_side_ids = {a.id for a in apps}

    # update (PUT) replaces the app's fields
    put = client.application.upsert(
        first.id,
        ApplicationIn(name=f"SDK app 0 put {run_id}", uid=uids[0], metadata={"run": run_id}),
    )
    assert put.id == first.id
    assert put.name == f"SDK app 0 put {run_id}"
    assert put.metadata == {"run": run_id}
    assert client.application.get(first.id).name == put.name

    # patch only touches the given fields
    patched = client.application.patch(uids[0], ApplicationPatch(name=f"SDK app 0 patched {run_id}"))
    assert patched.id == first.id
    assert patched.name == f"SDK app 0 patched {run_id}"
    assert patched.uid == uids[0]
    assert patched.metadata == {"run": run_id}
    assert client.application.get(first.id).name == patched.name

    # list with pagination: every app we created shows up exactly once
    listed, pages = list_all(client.application.list, ApplicationListOptions, limit=3)
    ours = [a.id for a in listed if a.id in client_side_ids]
    assert sorted(ours) == sorted(client_side_ids), "some apps missing or duplicated"
    assert pages >= 3
    assert len({a.id for a in listed}) == len(listed), "an app appeared on two pages"
    listed_first = next(a for a in listed if a.id == first.id)
    assert listed_first.name == patched.name and listed_first.uid == uids[0]

    # delete
    for app in apps:
        client.application.delete(app.id)
    for app in apps:
        with pytest.raises(HttpError) as exc:
            client.application.get(app.id)
        assert_status(exc, 404)
    with pytest.raises(HttpError) as exc:
        client.application.get(uids[1])
    assert_status(exc, 404)


# ---------------------------------------------------------------------- event types


def test_event_types(client, run_id, make_event_type):
    schemas = {
        "1": {
            "type": "object",
            "title": "Invoice paid",
            "properties": {"invoiceId": {"type": "string"}, "amount": {"type": "integer"}},
            "required": ["invoiceId"],
        }
    }
    names = [f"sdk.{run_id}.event{i}" for i in range(5)]

    # create
    for i, name in enumerate(names):
        et = make_event_type(name, description=f"event {i}", schemas=schemas)
        assert et.name == name
        assert et.description == f"event {i}"
        assert et.schemas == schemas
        assert et.deprecated is False
        assert not et.archived
        assert_aware(et.created_at)
        assert_aware(et.updated_at)

    with pytest.raises(HttpError) as exc:
        client.event_type.create(EventTypeIn(name=names[0], description="dup"))
    assert_status(exc, 409)

    # get
    got = client.event_type.get(names[0])
    assert got.name == names[0] and got.description == "event 0" and got.schemas == schemas

    # list with pagination (with_content so schemas are included)
    listed, pages = list_all(client.event_type.list, EventTypeListOptions, limit=2, with_content=True)
    ours = [et for et in listed if et.name in names]
    assert sorted(et.name for et in ours) == sorted(names)
    assert all(et.schemas == schemas for et in ours)
    assert pages >= 3

    # update (PUT)
    put = client.event_type.upsert(
        names[1], EventTypeUpsertIn(description="event 1 (put)", schemas=schemas)
    )
    assert put.name == names[1] and put.description == "event 1 (put)"
    assert client.event_type.get(names[1]).description == "event 1 (put)"

    # patch only touches the given fields
    patched = client.event_type.patch(names[1], EventTypePatch(deprecated=True))
    assert patched.deprecated is True
    assert patched.description == "event 1 (put)"
    assert patched.schemas == schemas

    # delete = archive: hidden from the default list, visible with include_archived
    client.event_type.delete(names[0])
    assert client.event_type.get(names[0]).archived is True
    default_list, _ = list_all(client.event_type.list, EventTypeListOptions, limit=50)
    assert names[0] not in {et.name for et in default_list}
    assert names[2] in {et.name for et in default_list}
    with_archived, _ = list_all(
        client.event_type.list, EventTypeListOptions, limit=50, include_archived=True
    )
    archived = [et for et in with_archived if et.name == names[0]]
    assert len(archived) == 1 and archived[0].archived is True

    # creating an archived event type again un-archives it
    revived = make_event_type(names[0], description="event 0 revived")
    assert not revived.archived and revived.description == "event 0 revived"

    # expunge removes it for good
    client.event_type.delete(names[4], EventTypeDeleteOptions(expunge=True))
    with pytest.raises(HttpError) as exc:
        client.event_type.get(names[4])
    assert_status(exc, 404)


# ------------------------------------------------------------------------ endpoints


def test_endpoints(client, run_id, make_app, make_event_type):
    app = make_app(f"SDK endpoints {run_id}", f"sdk-ep-app-{run_id}")
    event_type = make_event_type(f"sdk.{run_id}.endpoint").name

    # create with an explicit secret ...
    secret = random_secret()
    ep_uid = f"sdk-ep-{run_id}"
    ep1 = client.endpoint.create(
        app.id,
        EndpointIn(
            url="https://example.com/hookd-sdk/1",
            uid=ep_uid,
            description="first endpoint",
            secret=secret,
            event_types=[event_type],
            channels=["ch-a"],
            metadata={"run": run_id},
        ),
    )
    assert ep1.id and ep1.uid == ep_uid
    assert ep1.url == "https://example.com/hookd-sdk/1"
    assert ep1.description == "first endpoint"
    assert ep1.event_types == [event_type]
    assert ep1.channels == ["ch-a"]
    assert ep1.metadata == {"run": run_id}
    assert not ep1.disabled
    assert_aware(ep1.created_at)
    assert client.endpoint.get_secret(app.id, ep1.id).key == secret

    # ... and one without: the server generates a whsec_ secret
    ep2 = client.endpoint.create(app.id, EndpointIn(url="https://example.com/hookd-sdk/2"))
    assert ep2.description == "" and ep2.metadata == {}
    generated = client.endpoint.get_secret(app.id, ep2.id).key
    assert generated.startswith("whsec_")
    assert 24 <= len(base64.b64decode(generated[len("whsec_"):] + "==")) <= 64

    # get by id and by uid (app addressed by uid too)
    assert client.endpoint.get(app.id, ep1.id).url == ep1.url
    assert client.endpoint.get(app.uid, ep_uid).id == ep1.id

    # update (PUT)
    put = client.endpoint.upsert(
        app.id,
        ep1.id,
        EndpointUpsertIn(
            url="https://example.com/hookd-sdk/1b",
            uid=ep_uid,
            description="first endpoint (put)",
            event_types=[event_type],
            channels=["ch-a", "ch-b"],
            metadata={"run": run_id, "step": "put"},
        ),
    )
    assert put.id == ep1.id
    assert put.url == "https://example.com/hookd-sdk/1b"
    assert put.description == "first endpoint (put)"
    assert sorted(put.channels) == ["ch-a", "ch-b"]
    assert put.metadata == {"run": run_id, "step": "put"}

    # patch only touches the given fields; explicit null clears a field
    patched = client.endpoint.patch(
        app.id, ep1.id, EndpointPatch(description="first endpoint (patched)", disabled=True)
    )
    assert patched.description == "first endpoint (patched)"
    assert patched.disabled is True
    assert patched.url == "https://example.com/hookd-sdk/1b"
    assert sorted(patched.channels) == ["ch-a", "ch-b"]
    cleared = client.endpoint.patch(app.id, ep1.id, EndpointPatch(channels=None))
    assert not cleared.channels
    assert cleared.description == "first endpoint (patched)"
    assert client.endpoint.get(app.id, ep1.id).disabled is True

    # list with pagination
    extra = [
        client.endpoint.create(app.id, EndpointIn(url=f"https://example.com/hookd-sdk/x{i}"))
        for i in range(3)
    ]
    all_ids = {ep1.id, ep2.id} | {e.id for e in extra}
    listed, pages = list_all(
        lambda opts: client.endpoint.list(app.id, opts), EndpointListOptions, limit=2
    )
    assert sorted(e.id for e in listed) == sorted(all_ids)
    assert pages >= 3

    # headers: get / set (PUT) / patch
    initial = client.endpoint.get_headers(app.id, ep1.id)
    assert initial.headers == {} and initial.sensitive == []
    client.endpoint.set_headers(
        app.id, ep1.id, EndpointHeadersIn(headers={"X-Hookd-One": "1", "X-Hookd-Two": "2"})
    )
    got = client.endpoint.get_headers(app.id, ep1.id)
    assert lower_keys(got.headers) == {"x-hookd-one": "1", "x-hookd-two": "2"}
    client.endpoint.patch_headers(
        app.id,
        ep1.id,
        EndpointHeadersPatchIn(
            headers={"X-Hookd-Two": "2b", "X-Hookd-Three": "3"},
            delete_headers=["X-Hookd-One"],
        ),
    )
    got = client.endpoint.get_headers(app.id, ep1.id)
    assert lower_keys(got.headers) == {"x-hookd-two": "2b", "x-hookd-three": "3"}
    # sensitive headers are reported by name, not by value
    client.endpoint.set_headers(
        app.id,
        ep1.id,
        EndpointHeadersIn(headers={"X-Hookd-One": "1", "Authorization": "Bearer s3cret"}),
    )
    got = client.endpoint.get_headers(app.id, ep1.id)
    assert "authorization" in [h.lower() for h in got.sensitive]
    assert "Bearer s3cret" not in got.headers.values()
    assert lower_keys(got.headers).get("x-hookd-one") == "1"

    # secret rotation: the response carries the new key, get_secret agrees
    rotated = client.endpoint.rotate_secret(app.id, ep1.id, EndpointSecretRotateIn())
    assert rotated.key.startswith("whsec_") and rotated.key != secret
    assert client.endpoint.get_secret(app.id, ep1.id).key == rotated.key
    chosen = random_secret()
    rotated2 = client.endpoint.rotate_secret(app.id, ep1.id, EndpointSecretRotateIn(key=chosen))
    assert rotated2.key == chosen
    assert client.endpoint.get_secret(app.id, ep1.id).key == chosen

    # delete
    client.endpoint.delete(app.id, ep2.id)
    with pytest.raises(HttpError) as exc:
        client.endpoint.get(app.id, ep2.id)
    assert_status(exc, 404)
    remaining, _ = list_all(
        lambda opts: client.endpoint.list(app.id, opts), EndpointListOptions, limit=50
    )
    assert ep2.id not in {e.id for e in remaining}
    assert len(remaining) == len(all_ids) - 1


# ------------------------------------------------------------------------- messages


def test_messages(client, run_id, make_app, make_event_type):
    app = make_app(f"SDK messages {run_id}", f"sdk-msg-app-{run_id}")
    type_a = make_event_type(f"sdk.{run_id}.msg.a").name
    type_b = make_event_type(f"sdk.{run_id}.msg.b").name

    def payload_for(i):
        return {
            "i": i,
            "run": run_id,
            "nested": {"list": [1, 2.5, "three"], "flag": True, "nothing": None},
            "text": "héllo ✓ \"quoted\"",
        }

    def send(i, with_content=True):
        msg_in = MessageIn(
            event_type=type_a if i % 2 == 0 else type_b,
            payload=payload_for(i),
            event_id=f"evt-{run_id}-{i}",
            channels=["ch-even" if i % 2 == 0 else "ch-odd", "ch-all"],
        )
        return client.message.create(app.id, msg_in, MessageCreateOptions(with_content=with_content))

    # batch 1, with content in the response
    batch1 = [send(i) for i in range(3)]
    for i, msg in enumerate(batch1):
        assert msg.id
        assert msg.event_id == f"evt-{run_id}-{i}"
        assert msg.event_type == (type_a if i % 2 == 0 else type_b)
        assert msg.payload == payload_for(i)
        assert sorted(msg.channels) == sorted(["ch-even" if i % 2 == 0 else "ch-odd", "ch-all"])
        assert_aware(msg.timestamp)

    # the same eventId again is a conflict
    with pytest.raises(HttpError) as exc:
        send(0)
    assert_status(exc, 409)

    # a clear gap so before/after can split the two batches (even at 1s granularity)
    time.sleep(2.1)

    # batch 2; the last one is created with with_content=False (the SDK default)
    batch2 = [send(3), send(4), send(5, with_content=False)]
    assert batch2[2].payload == {}
    assert batch2[2].event_id == f"evt-{run_id}-5"
    all_msgs = batch1 + batch2
    expected_payload = {m.id: payload_for(i) for i, m in enumerate(all_msgs)}

    # get: without content the payload is an empty object, with content it round-trips
    plain = client.message.get(app.id, batch2[2].id)
    assert plain.id == batch2[2].id and plain.payload == {}
    full = client.message.get(app.id, batch2[2].id, MessageGetOptions(with_content=True))
    assert full.payload == payload_for(5)
    by_event_id = client.message.get(
        app.uid, f"evt-{run_id}-1", MessageGetOptions(with_content=True)
    )
    assert by_event_id.id == batch1[1].id and by_event_id.payload == payload_for(1)

    def list_ids(**filters):
        items, pages = list_all(
            lambda opts: client.message.list(app.id, opts), MessageListOptions, **filters
        )
        ids = [m.id for m in items]
        assert len(ids) == len(set(ids)), "a message appeared on two pages"
        return set(ids), items, pages

    # list with pagination, payloads included
    ids, items, pages = list_ids(limit=2, with_content=True)
    assert ids == set(expected_payload)
    assert pages >= 3
    for m in items:
        assert m.payload == expected_payload[m.id]

    # list without content: payloads are empty objects
    _, items, _ = list_ids(limit=50)
    assert items and all(m.payload == {} for m in items)

    # filter by event types (one and several)
    evens = {m.id for i, m in enumerate(all_msgs) if i % 2 == 0}
    odds = {m.id for i, m in enumerate(all_msgs) if i % 2 == 1}
    assert list_ids(limit=2, event_types=[type_a])[0] == evens
    assert list_ids(limit=2, event_types=[type_b])[0] == odds
    assert list_ids(limit=2, event_types=[type_a, type_b])[0] == evens | odds

    # filter by channel
    assert list_ids(limit=2, channel="ch-odd")[0] == odds
    assert list_ids(limit=2, channel="ch-all")[0] == evens | odds
    assert list_ids(limit=2, channel=f"no-such-channel-{run_id}")[0] == set()

    # filter by time, using the server's own timestamps
    last_of_1 = max(m.timestamp for m in batch1)
    first_of_2 = min(m.timestamp for m in batch2)
    assert first_of_2 - last_of_1 >= timedelta(seconds=2)
    boundary = last_of_1 + (first_of_2 - last_of_1) / 2
    assert list_ids(limit=2, after=boundary)[0] == {m.id for m in batch2}
    assert list_ids(limit=2, before=boundary)[0] == {m.id for m in batch1}
    assert list_ids(limit=2, after=boundary, event_types=[type_a])[0] == (
        {m.id for m in batch2} & evens
    )
