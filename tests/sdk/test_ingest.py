"""Ingest sources through the official SDK (`svix.ingest.source`, `svix.ingest.endpoint`),
with requests signed by code hookd did not write: the `stripe` package's
`WebhookSignature.generate_signature_header` for a `stripe` source, `standardwebhooks` for a
`svix` source, and hand-written GitHub and Shopify signers as those services document them.
What hookd forwards is checked byte for byte, and its own signature with `standardwebhooks`.

svix 2.9.1 has no call for the source log, so the log is read over plain HTTP.
"""

import base64
import hashlib
import hmac
import json
import os
import time
from datetime import datetime, timezone

import httpx
import pytest
import standardwebhooks
import stripe
from svix.api import (
    IngestEndpointIn,
    IngestEndpointSecretIn,
    IngestSourceIn,
)
from svix.exceptions import HttpError, HTTPValidationError
from svix.models import CronConfig, GithubConfig, ShopifyConfig, StripeConfig, SvixConfig

from receiver import wait_for

TIMEOUT = 20.0
BODY = '{"id": "evt_1", "type": "invoice.paid",  "data": {"amount": 4200}}'


@pytest.fixture
def api():
    url = os.environ["HOOKD_URL"]
    token = os.environ["HOOKD_TOKEN"]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def forwarded(client, receiver, source, path):
    """Adds an endpoint on the receiver to the source; returns its signing secret."""
    ep = client.ingest.endpoint.create(source.id, IngestEndpointIn(url=receiver.url(path)))
    assert ep.url == receiver.url(path)
    return client.ingest.endpoint.get_secret(source.id, ep.id).key


def post(source, body: str, headers: dict) -> httpx.Response:
    return httpx.post(source.ingest_url, content=body.encode(), headers=headers, timeout=10)


def check_forwarded(receiver, path: str, secret: str, body: str):
    d = wait_for(
        lambda: receiver.deliveries(path)[0] if receiver.deliveries(path) else None,
        TIMEOUT,
        lambda: f"{len(receiver.deliveries(path))} deliveries at {path}",
    )
    assert d.body == body.encode(), "forwarded byte for byte"
    # hookd signs what it forwards with the endpoint's secret (Standard Webhooks).
    standardwebhooks.Webhook(secret).verify(d.body, dict(d.headers))
    return d


def log_of(api, source_id: str) -> list:
    r = api.get(f"/ingest/api/v1/source/{source_id}/log")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_a_stripe_source_takes_what_the_stripe_package_signs(client, api, receiver, run_id):
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    source = client.ingest.source.create(
        IngestSourceIn(
            name="Stripe payments", uid=f"stripe-{run_id}", type="stripe",
            config=StripeConfig(secret=secret),
        )
    )
    assert source.id.startswith("src_")
    assert source.type == "stripe"
    assert source.ingest_url
    ep_secret = forwarded(client, receiver, source, "/stripe")

    wrong = stripe.WebhookSignature.generate_signature_header(BODY, "whsec_other")
    r = post(source, BODY, {"Stripe-Signature": wrong})
    assert r.status_code == 401, r.text
    stale = stripe.WebhookSignature.generate_signature_header(
        BODY, secret, timestamp=int(time.time()) - 3600
    )
    assert post(source, BODY, {"Stripe-Signature": stale}).status_code == 401
    good = stripe.WebhookSignature.generate_signature_header(BODY, secret)
    r = post(source, BODY, {"Stripe-Signature": good, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    d = check_forwarded(receiver, "/stripe", ep_secret, BODY)
    assert d.msg_id == r.json()["msgId"]

    entries = log_of(api, source.id)
    assert [e["status_code"] for e in entries] == [200, 401, 401]
    assert entries[0]["payload"] == BODY
    assert "old" in entries[1]["error_text"]
    time.sleep(0.5)
    assert len(receiver.deliveries("/stripe")) == 1, "refused requests are not forwarded"


def test_a_svix_source_takes_what_standardwebhooks_signs(client, receiver, run_id):
    sender_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    source = client.ingest.source.create(
        IngestSourceIn(name="From Svix", type="svix", config=SvixConfig(secret=sender_secret))
    )
    ep_secret = forwarded(client, receiver, source, "/svix-in")
    sender = standardwebhooks.Webhook(sender_secret)
    now = datetime.now(tz=timezone.utc)
    headers = {
        "webhook-id": "msg_sent_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sender.sign("msg_sent_1", now, BODY),
    }
    tampered = BODY.replace("4200", "1")
    assert post(source, tampered, headers).status_code == 401
    assert post(source, BODY, headers).status_code == 200
    check_forwarded(receiver, "/svix-in", ep_secret, BODY)


def test_github_and_shopify_sources_take_what_those_services_sign(client, api, receiver, run_id):
    github = client.ingest.source.create(
        IngestSourceIn(name="Repository", type="github", config=GithubConfig(secret="gh-s3cret"))
    )
    gh_secret = forwarded(client, receiver, github, "/github")
    # GitHub: X-Hub-Signature-256 = "sha256=" + hex HMAC-SHA256 of the body.
    signature = "sha256=" + hmac.new(b"gh-s3cret", BODY.encode(), hashlib.sha256).hexdigest()
    r = post(github, BODY, {"X-Hub-Signature-256": signature, "X-GitHub-Event": "push"})
    assert r.status_code == 200, r.text
    check_forwarded(receiver, "/github", gh_secret, BODY)
    assert post(github, BODY, {"X-Hub-Signature-256": "sha256=00"}).status_code == 401

    shopify = client.ingest.source.create(
        IngestSourceIn(name="Shop", type="shopify", config=ShopifyConfig(secret="shpss_abc"))
    )
    shop_secret = forwarded(client, receiver, shopify, "/shopify")
    # Shopify: X-Shopify-Hmac-Sha256 = base64 HMAC-SHA256 of the body.
    digest = hmac.new(b"shpss_abc", BODY.encode(), hashlib.sha256).digest()
    r = post(shopify, BODY, {
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Topic": "orders/create",
    })
    assert r.status_code == 200, r.text
    check_forwarded(receiver, "/shopify", shop_secret, BODY)
    entries = log_of(api, github.id)
    assert [e["status_code"] for e in entries] == [401, 200]


def test_sources_and_endpoints_are_managed_through_the_sdk(client, receiver, run_id):
    uid = f"crawl-{run_id}"
    cron = client.ingest.source.create(
        IngestSourceIn(
            name="Nightly crawl", uid=uid, type="cron",
            config=CronConfig(schedule="0 2 * * *", payload=json.dumps({"job": "crawl"}),
                              content_type="application/json"),
        )
    )
    assert cron.ingest_url is None
    assert cron.config.schedule == "0 2 * * *"
    got = client.ingest.source.get(uid)
    assert got.id == cron.id
    listed = client.ingest.source.list()
    assert cron.id in [s.id for s in listed.data]

    renamed = client.ingest.source.upsert(
        cron.id,
        IngestSourceIn(name="Crawl at 3", uid=uid, type="cron",
                       config=CronConfig(schedule="0 3 * * *", payload="{}")),
    )
    assert renamed.name == "Crawl at 3"
    assert renamed.config.schedule == "0 3 * * *"

    ep = client.ingest.endpoint.create(
        cron.id, IngestEndpointIn(url=receiver.url("/cron"), uid=f"ep-{run_id}",
                                  headers={"X-Team": "data"}),
    )
    assert client.ingest.endpoint.get(cron.id, f"ep-{run_id}").id == ep.id
    assert client.ingest.endpoint.get_headers(cron.id, ep.id).headers == {"X-Team": "data"}
    before = client.ingest.endpoint.get_secret(cron.id, ep.id).key
    client.ingest.endpoint.rotate_secret(cron.id, ep.id, IngestEndpointSecretIn())
    assert client.ingest.endpoint.get_secret(cron.id, ep.id).key != before
    assert [e.id for e in client.ingest.endpoint.list(cron.id).data] == [ep.id]
    client.ingest.endpoint.delete(cron.id, ep.id)
    assert client.ingest.endpoint.list(cron.id).data == []

    # A source with a URL rotates its token; the old URL keeps working.
    gen = client.ingest.source.create(IngestSourceIn(name="Anything", type="generic-webhook"))
    rotated = client.ingest.source.rotate_token(gen.id)
    assert rotated.ingest_url != gen.ingest_url
    assert httpx.post(gen.ingest_url, content=b"{}").status_code == 200
    assert httpx.post(rotated.ingest_url, content=b"{}").status_code == 200

    with pytest.raises(HTTPValidationError) as refused:
        client.ingest.source.create(
            IngestSourceIn(name="Bad", type="cron", config=CronConfig(schedule="nope", payload="{}"))
        )
    assert refused.value.detail[0].loc == ["body", "config.schedule"]
    client.ingest.source.delete(cron.id)
    client.ingest.source.delete(gen.id)
    with pytest.raises(HttpError) as gone:
        client.ingest.source.get(cron.id)
    assert gone.value.status_code == 404
