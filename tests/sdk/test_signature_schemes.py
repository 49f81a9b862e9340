"""Signature schemes checked with code hookd did not write: the `stripe` package's
`WebhookSignature.verify_header` for `stripe`, `standardwebhooks` for `standard`, and a
receiver written here exactly as the Laravel middleware (`hash_hmac('sha256', $rawBody,
$secret)` compared with `X-Webhook-Signature: sha256=<hex>`) for `hmac-sha256`.

The endpoints are created over plain HTTP (the Svix SDK has no `signature` field), then
read through the SDK to show its models still decode hookd's endpoints.
"""

import base64
import hashlib
import hmac
import os

import httpx
import pytest
import standardwebhooks
import stripe
from svix.api import ApplicationIn, MessageIn

from receiver import wait_for

TIMEOUT = 20.0


def random_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def laravel_accepts(raw_body: bytes, header: str | None, secret: str) -> bool:
    """The middleware: $computed = hash_hmac('sha256', $request->getContent(), $secret);
    hash_equals('sha256=' . $computed, $request->header('X-Webhook-Signature'))."""
    if header is None:
        return False
    computed = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest("sha256=" + computed, header)


@pytest.fixture
def api():
    url = os.environ["HOOKD_URL"]
    token = os.environ["HOOKD_TOKEN"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def endpoint_with(api, app_id: str, url: str, secret: str, signature: dict) -> dict:
    r = api.post(
        f"/api/v1/app/{app_id}/endpoint",
        json={"url": url, "secret": secret, "signature": signature},
    )
    assert r.status_code == 201, r.text
    return r.json()


def one_delivery(client, receiver, app_id: str, path: str, n: int = 1):
    client.message.create(app_id, MessageIn(event_type="scheme.test", payload={"n": n}))
    return wait_for(
        lambda: receiver.deliveries(path)[n - 1] if len(receiver.deliveries(path)) >= n else None,
        TIMEOUT,
        lambda: f"{len(receiver.deliveries(path))} deliveries at {path}",
    )


def test_stripe_scheme_verifies_with_the_stripe_package_across_a_rotation(
    client, api, receiver, make_app, run_id
):
    app = make_app(f"stripe-{run_id}")
    old = random_secret()
    ep = endpoint_with(
        api, app.id, receiver.url("/stripe"), old,
        {"scheme": "stripe", "header": "X-Obsrv-Signature"},
    )
    # The SDK's model decodes an endpoint that carries hookd's extra field.
    read = client.endpoint.get(app.id, ep["id"])
    assert read.url == receiver.url("/stripe")

    d = one_delivery(client, receiver, app.id, "/stripe")
    header = d.headers["x-obsrv-signature"]
    assert stripe.WebhookSignature.verify_header(d.body.decode(), header, old, tolerance=300)
    assert d.headers.get("webhook-id", "").startswith("msg_")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(d.body.decode(), header, random_secret(), 300)

    # The old secret stays valid for the hour after a rotation, beside the new one.
    r = api.post(
        f"/api/v1/app/{app.id}/endpoint/{ep['id']}/secret/rotate",
        json={"gracePeriodSeconds": 3600},
    )
    assert r.status_code == 200, r.text
    new = r.json()["key"]
    d = one_delivery(client, receiver, app.id, "/stripe", 2)
    header = d.headers["x-obsrv-signature"]
    for secret in (old, new):
        assert stripe.WebhookSignature.verify_header(d.body.decode(), header, secret, 300)


def test_hmac_sha256_scheme_passes_the_laravel_middleware(client, api, receiver, make_app, run_id):
    app = make_app(f"hmac-{run_id}")
    secret = random_secret()
    ep = endpoint_with(api, app.id, receiver.url("/laravel"), secret, {"scheme": "hmac-sha256"})
    assert ep["signature"]["header"] == "x-webhook-signature"
    assert client.endpoint.list(app.id).data[0].id == ep["id"]
    d = one_delivery(client, receiver, app.id, "/laravel")
    assert laravel_accepts(d.body, d.headers.get("x-webhook-signature"), secret)
    assert not laravel_accepts(d.body + b" ", d.headers.get("x-webhook-signature"), secret)
    assert not laravel_accepts(d.body, d.headers.get("x-webhook-signature"), random_secret())


def test_standard_scheme_verifies_with_standardwebhooks(client, api, receiver, make_app, run_id):
    app = make_app(f"standard-{run_id}")
    secret = random_secret()
    endpoint_with(api, app.id, receiver.url("/std"), secret, {"scheme": "standard"})
    d = one_delivery(client, receiver, app.id, "/std")
    standardwebhooks.Webhook(secret).verify(d.body, d.header_family("webhook"))
