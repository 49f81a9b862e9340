"""Delivery tests: messages created through the Svix SDK reach a local receiver, signed so
that both consumer libraries (standardwebhooks and svix) accept them.

The hookd under test must be allowed to deliver to loopback addresses and should retry
quickly; run.sh starts it with HOOKD_ALLOWED_NETWORKS=127.0.0.0/8 and
HOOKD_RETRY_SCHEDULE=1,1,1.
"""

import base64
import json
import os
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import standardwebhooks
import svix.webhooks
from standardwebhooks.webhooks import WebhookVerificationError
from svix.api import (
    EndpointHeadersIn,
    EndpointIn,
    EndpointSecretRotateIn,
    MessageAttemptListAttemptedDestinationsOptions,
    MessageAttemptListByMsgOptions,
    MessageIn,
    MessageStatus,
    MessageStatusText,
)

from receiver import Delivery, Receiver, wait_for

# Generous for a healthy server (deliveries take milliseconds, retries about a second),
# short enough that a hookd that never delivers fails the suite quickly.
DELIVERY_TIMEOUT = 20.0
EVENT_TYPE = "sdk.delivery.test"
HINT = "(is hookd started with HOOKD_ALLOWED_NETWORKS=127.0.0.0/8? see run.sh)"


def random_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def sample_payloads(run_id: str) -> list[dict]:
    """Twenty payloads, among them unicode, escapes, odd numbers, deep nesting and ~100 KB."""
    nested: dict = {"leaf": [1, {"deepest": True}]}
    for depth in range(40):
        nested = {f"level{depth}": nested, "list": [depth, [depth, [depth]]]}
    big = {
        "kind": "big",
        "items": [
            {"n": i, "name": f"item-{i:05d}", "tags": ["alpha", "beta"], "ratio": i / 7}
            for i in range(1250)
        ],
    }
    special = [
        {"kind": "simple", "run": run_id},
        {},
        {
            "kind": "unicode",
            "text": "héllo wörld, 日本語, Ελληνικά, emoji 🚀👩‍💻, combining é",
            "rtl": "مرحبا بالعالم",
            "ключ": "значение",
            "": "empty key",
        },
        {
            "kind": "escapes",
            "quotes": 'she said "hi"',
            "backslash": "C:\\path\\to\\file",
            "controls": "nul\u0000 tab\t newline\n cr\r bell\u0007 unit\u001f",
            "separators": "line\u2028paragraph\u2029",
            "html": "</script><!-- & -->",
        },
        {
            "kind": "numbers",
            "zero": 0,
            "negative": -1,
            "above_2_53": 2**53 + 1,
            "above_u64": 123456789012345678901234567890,
            "tiny": 1e-7,
            "pi": 3.141592653589793,
            "huge": 1.5e300,
            "flags": [True, False, None],
        },
        {"kind": "nested", "tree": nested},
        {"kind": "matrix", "rows": [[i * j for j in range(12)] for i in range(12)]},
        big,
    ]
    regular = [
        {"kind": "regular", "run": run_id, "seq": i, "meta": {"even": i % 2 == 0, "tags": [str(i)]}}
        for i in range(20 - len(special))
    ]
    return special + regular


def check_delivery(d: Delivery, secret: str, msg_id: str, payload: dict) -> None:
    """Everything a consumer relies on, for one delivery of `msg_id`."""
    assert d.method == "POST"
    assert d.headers.get("content-type") == "application/json"
    assert d.headers.get("user-agent", "").startswith("hookd/"), d.headers.get("user-agent")
    for part in ("id", "timestamp", "signature"):
        assert d.headers.get(f"svix-{part}") == d.headers.get(f"webhook-{part}"), part
    assert d.headers["webhook-id"] == msg_id
    timestamp = d.headers["webhook-timestamp"]
    assert timestamp.isdigit(), f"timestamp is not whole unix seconds: {timestamp!r}"
    assert abs(int(timestamp) - d.received_at) < 60
    # hookd sends the payload text it was given; it must be JSON meaning the same thing.
    assert json.loads(d.body.decode("utf-8")) == payload
    # Each library sees only its own header family, so both families are really checked.
    standardwebhooks.Webhook(secret).verify(d.body, d.header_family("webhook"))
    svix.webhooks.Webhook(secret).verify(d.body, d.header_family("svix"))


def assert_rejected(d: Delivery, secret: str) -> None:
    """A secret that did not sign the delivery must not verify it (with either library)."""
    with pytest.raises(WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(d.body, d.header_family("webhook"))
    with pytest.raises(WebhookVerificationError):
        svix.webhooks.Webhook(secret).verify(d.body, d.header_family("svix"))


def wait_for_deliveries(receiver: Receiver, path: str, count: int) -> list[Delivery]:
    """Waits until `path` got at least `count` requests; returns all of them."""

    def enough():
        got = receiver.deliveries(path)
        return got if len(got) >= count else None

    return wait_for(
        enough,
        DELIVERY_TIMEOUT,
        lambda: f"{path} got {len(receiver.deliveries(path))} of {count} requests {HINT}",
    )


def send(client, app_id: str, payload: dict) -> str:
    return client.message.create(app_id, MessageIn(event_type=EVENT_TYPE, payload=payload)).id


# ------------------------------------------------------------------------------ tests


def test_every_delivery_is_signed_and_intact(client, receiver, make_app, run_id):
    app = make_app(f"SDK delivery {run_id}", f"sdk-delivery-{run_id}")
    explicit_secret = random_secret()
    explicit = client.endpoint.create(
        app.id, EndpointIn(url=receiver.url("/explicit"), secret=explicit_secret)
    )
    generated = client.endpoint.create(app.id, EndpointIn(url=receiver.url("/generated")))
    assert client.endpoint.get_secret(app.id, explicit.id).key == explicit_secret
    generated_secret = client.endpoint.get_secret(app.id, generated.id).key
    secrets = {"/explicit": explicit_secret, "/generated": generated_secret}

    payloads = sample_payloads(run_id)
    big = next(p for p in payloads if p.get("kind") == "big")
    big_size = len(json.dumps(big, separators=(",", ":")))
    assert 90_000 <= big_size <= 120_000, f"the big payload is {big_size} bytes"
    sent = {send(client, app.id, payload): payload for payload in payloads}
    assert len(sent) == len(payloads), "message ids are not unique"

    expected = {(path, msg_id) for path in secrets for msg_id in sent}

    def arrived():
        return {(d.path, d.msg_id) for d in receiver.deliveries()}

    wait_for(
        lambda: expected <= arrived(),
        DELIVERY_TIMEOUT,
        lambda: f"{len(expected - arrived())} of {len(expected)} deliveries missing {HINT}",
    )

    for path, secret in secrets.items():
        deliveries = receiver.deliveries(path)
        # Every message exactly once: each endpoint answered 200 on the first attempt.
        assert Counter(d.msg_id for d in deliveries) == Counter(sent.keys()), path
        by_id = {d.msg_id: d for d in deliveries}
        for msg_id, payload in sent.items():
            check_delivery(by_id[msg_id], secret, msg_id, payload)

    # Sanity check of the check: the other endpoint's secret does not verify a delivery.
    assert_rejected(receiver.deliveries("/explicit")[0], generated_secret)
    assert_rejected(receiver.deliveries("/generated")[0], explicit_secret)


def test_failed_delivery_is_retried_until_it_succeeds(client, receiver, make_app, run_id):
    app = make_app(f"SDK retries {run_id}", f"sdk-retries-{run_id}")
    secret = random_secret()
    endpoint = client.endpoint.create(
        app.id, EndpointIn(url=receiver.url("/flaky"), secret=secret)
    )
    receiver.script("/flaky", 500, 500)
    payload = {"kind": "retried", "run": run_id}
    msg_id = send(client, app.id, payload)

    deliveries = wait_for_deliveries(receiver, "/flaky", 3)
    assert [d.msg_id for d in deliveries] == [msg_id] * 3
    for d in deliveries:
        check_delivery(d, secret, msg_id, payload)

    # Attempts are recorded shortly after they are made; wait until all three are listed.
    def attempts():
        page = client.message_attempt.list_by_msg(
            app.id, msg_id, MessageAttemptListByMsgOptions(limit=50)
        )
        return page.data if len(page.data) >= 3 else None

    listed = wait_for(attempts, 10, lambda: "the attempt log does not list 3 attempts")
    listed.sort(key=lambda a: a.timestamp)
    assert [a.status for a in listed] == [
        MessageStatus.FAIL,
        MessageStatus.FAIL,
        MessageStatus.SUCCESS,
    ]
    assert [a.status_text for a in listed] == [
        MessageStatusText.FAIL,
        MessageStatusText.FAIL,
        MessageStatusText.SUCCESS,
    ]
    assert [a.response_status_code for a in listed] == [500, 500, 200]
    assert {(a.msg_id, a.endpoint_id, a.url) for a in listed} == {
        (msg_id, endpoint.id, receiver.url("/flaky"))
    }
    assert len({a.id for a in listed}) == 3

    destinations = client.message_attempt.list_attempted_destinations(
        app.id, msg_id, MessageAttemptListAttemptedDestinationsOptions()
    ).data
    assert [(e.id, e.status) for e in destinations] == [(endpoint.id, MessageStatus.SUCCESS)]

    # Once it succeeded, the message is not sent again.
    assert len(receiver.deliveries("/flaky")) == 3


def test_rotated_secret_signs_with_old_and_new_key(client, receiver, make_app, run_id):
    app = make_app(f"SDK rotation {run_id}", f"sdk-rotation-{run_id}")
    old_secret = random_secret()
    endpoint = client.endpoint.create(
        app.id, EndpointIn(url=receiver.url("/rotated"), secret=old_secret)
    )
    new_secret = client.endpoint.rotate_secret(app.id, endpoint.id, EndpointSecretRotateIn()).key
    assert new_secret != old_secret

    payload = {"kind": "rotation", "run": run_id}
    msg_id = send(client, app.id, payload)
    [d] = wait_for_deliveries(receiver, "/rotated", 1)

    # During the grace period the header carries one signature per key.
    signatures = d.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and len(set(signatures)) == 2, signatures
    assert all(s.startswith("v1,") for s in signatures), signatures
    for secret in (old_secret, new_secret):
        check_delivery(d, secret, msg_id, payload)
    assert_rejected(d, random_secret())


def test_custom_endpoint_headers_are_sent(client, receiver, make_app, run_id):
    app = make_app(f"SDK headers {run_id}", f"sdk-headers-{run_id}")
    secret = random_secret()
    with_headers = client.endpoint.create(
        app.id, EndpointIn(url=receiver.url("/with-headers"), secret=secret)
    )
    client.endpoint.create(app.id, EndpointIn(url=receiver.url("/without-headers")))
    custom = {
        "X-Hookd-Tenant": "acme",
        "X-Hookd-Run": run_id,
        # Sensitive headers are hidden by the API, but still sent.
        "Authorization": "Bearer s3cret",
    }
    client.endpoint.set_headers(app.id, with_headers.id, EndpointHeadersIn(headers=custom))

    payload = {"kind": "headers", "run": run_id}
    msg_id = send(client, app.id, payload)
    [d] = wait_for_deliveries(receiver, "/with-headers", 1)
    check_delivery(d, secret, msg_id, payload)
    for name, value in custom.items():
        assert d.headers.get(name.lower()) == value, name

    [plain] = wait_for_deliveries(receiver, "/without-headers", 1)
    assert plain.msg_id == msg_id
    for name in custom:
        assert name.lower() not in plain.headers, name


def test_deliver_at_holds_a_message_until_its_time(client, receiver, make_app, run_id):
    app = make_app(f"SDK scheduled {run_id}", f"sdk-scheduled-{run_id}")
    secret = random_secret()
    client.endpoint.create(app.id, EndpointIn(url=receiver.url("/scheduled"), secret=secret))
    deliver_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3)
    payload = {"kind": "scheduled", "run": run_id}
    msg = client.message.create(
        app.id, MessageIn(event_type=EVENT_TYPE, payload=payload, deliver_at=deliver_at)
    )
    assert msg.deliver_at == deliver_at
    assert client.message.get(app.id, msg.id).deliver_at == deliver_at

    [d] = wait_for_deliveries(receiver, "/scheduled", 1)
    arrived = datetime.now(timezone.utc)
    assert arrived >= deliver_at, f"delivered at {arrived}, before {deliver_at}"
    check_delivery(d, secret, msg.id, payload)
