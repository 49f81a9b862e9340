"""ed25519 (`whsk_`) endpoint secrets, checked with code hookd did not write: the `v1a`
signature of a real delivery is verified with `cryptography`'s Ed25519PublicKey, given only
the `whpk_` public key hookd shows (`publicKey` of GET …/secret), over
`{webhook-id}.{webhook-timestamp}.{body}` as Standard Webhooks defines it. The
`standardwebhooks` package checks the `v1` half of a whsec_ → whsk_ rotation.

Neither `standardwebhooks` 1.1.0 nor `svix` 2.9.1 verifies `v1a` (their Python code knows
only `v1`), hence `cryptography`. The secret is made here, by `cryptography`, so hookd's key derivation is checked too.
"""

import base64
import os
import time

import httpx
import pytest
import standardwebhooks
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from svix.api import MessageIn

from receiver import wait_for

TIMEOUT = 20.0


@pytest.fixture
def api():
    url = os.environ["HOOKD_URL"]
    token = os.environ["HOOKD_TOKEN"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def new_keypair() -> tuple[str, str]:
    """A `whsk_` secret (32-byte seed) and its `whpk_` public key, made by `cryptography`."""
    seed = os.urandom(32)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "whsk_" + base64.b64encode(seed).decode(), "whpk_" + base64.b64encode(raw).decode()


def v1a_verifies(whpk: str, headers: dict[str, str], body: bytes) -> bool:
    """A receiver holding only the public key: any v1a entry that verifies, and a fresh
    timestamp."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(whpk.removeprefix("whpk_")))
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > 300:
        return False
    signed = f"{msg_id}.{ts}.".encode() + body
    for entry in headers["webhook-signature"].split(" "):
        version, _, sig = entry.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(sig), signed)
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


def one_delivery(client, receiver, app_id: str, path: str, n: int):
    client.message.create(app_id, MessageIn(event_type="ed25519.test", payload={"n": n}))
    return wait_for(
        lambda: receiver.deliveries(path)[n - 1] if len(receiver.deliveries(path)) >= n else None,
        TIMEOUT,
        lambda: f"{len(receiver.deliveries(path))} deliveries at {path}",
    )


def test_v1a_verifies_with_the_public_key_across_a_rotation(
    client, api, receiver, make_app, run_id
):
    app = make_app(f"ed25519-{run_id}")
    whsec = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    r = api.post(
        f"/api/v1/app/{app.id}/endpoint",
        json={"url": receiver.url("/ed"), "secret": whsec},
    )
    assert r.status_code == 201, r.text
    ep_id = r.json()["id"]

    # Rotate from whsec_ to a whsk_ made here; both sign during the grace period.
    whsk, whpk = new_keypair()
    r = api.post(
        f"/api/v1/app/{app.id}/endpoint/{ep_id}/secret/rotate",
        json={"key": whsk, "gracePeriodSeconds": 3600},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"key": whsk, "publicKey": whpk}
    # The Svix SDK still decodes the secret (it ignores the extra field).
    assert client.endpoint.get_secret(app.id, ep_id).key == whsk

    d = one_delivery(client, receiver, app.id, "/ed", 1)
    headers = d.header_family("webhook")
    versions = [e.split(",")[0] for e in headers["webhook-signature"].split(" ")]
    assert versions == ["v1a", "v1"], headers["webhook-signature"]
    assert v1a_verifies(whpk, headers, d.body)
    # The v1 half, for receivers still holding the old whsec_ secret.
    standardwebhooks.Webhook(whsec).verify(d.body, headers)
    # A changed body, or another key, does not verify.
    assert not v1a_verifies(whpk, headers, d.body + b" ")
    assert not v1a_verifies(new_keypair()[1], headers, d.body)

    # After a rotation with no grace period, the first whsk_ stops signing; the whsec_ is
    # still in its grace period.
    whsk2, whpk2 = new_keypair()
    r = api.post(
        f"/api/v1/app/{app.id}/endpoint/{ep_id}/secret/rotate",
        json={"key": whsk2, "gracePeriodSeconds": 0},
    )
    assert r.status_code == 200, r.text
    d = one_delivery(client, receiver, app.id, "/ed", 2)
    headers = d.header_family("webhook")
    versions = [e.split(",")[0] for e in headers["webhook-signature"].split(" ")]
    assert versions == ["v1a", "v1"], headers["webhook-signature"]
    assert v1a_verifies(whpk2, headers, d.body)
    assert not v1a_verifies(whpk, headers, d.body)


def test_whsk_is_refused_by_the_stripe_scheme(api, make_app, run_id):
    app = make_app(f"ed25519-stripe-{run_id}")
    whsk, _ = new_keypair()
    r = api.post(
        f"/api/v1/app/{app.id}/endpoint",
        json={"url": "https://example.com/h", "secret": whsk, "signature": {"scheme": "stripe"}},
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "secret"]
