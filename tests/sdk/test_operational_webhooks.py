"""Operational webhooks through the Svix SDK: `client.operational_webhook.endpoint.*`
(create, list, get, upsert, headers, secret, rotate, delete), and an `endpoint.created`
event delivered to the operational endpoint, verified with standardwebhooks.

The SDK test server is shared by the suite: the operational endpoint made here is deleted
when the test ends, and only the events about this test's own endpoint are looked at.
"""

import json

import pytest
import standardwebhooks
from standardwebhooks.webhooks import WebhookVerificationError
from svix.api import (
    EndpointIn,
    OperationalWebhookEndpointHeadersIn,
    OperationalWebhookEndpointIn,
    OperationalWebhookEndpointSecretIn,
    OperationalWebhookEndpointUpsertIn,
)
from svix.exceptions import HttpError

from receiver import wait_for

DELIVERY_TIMEOUT = 20.0


@pytest.fixture
def operational_endpoints(client):
    """The SDK's operational endpoint API; endpoints made through `make` are deleted after."""
    api = client.operational_webhook.endpoint
    created = []

    def make(body: OperationalWebhookEndpointIn):
        endpoint = api.create(body)
        created.append(endpoint.id)
        return endpoint

    yield api, make

    for endpoint_id in created:
        try:
            api.delete(endpoint_id)
        except HttpError:
            pass


def test_operational_endpoints_round_trip_through_the_sdk(operational_endpoints, run_id):
    api, make = operational_endpoints
    uid = f"ops-{run_id}"
    created = make(
        OperationalWebhookEndpointIn(
            url="https://ops.example/hook",
            uid=uid,
            description="on call",
            event_types=["endpoint.disabled", "message.attempt.exhausted"],
            throttle_rate=10,
            metadata={"team": "sre"},
            headers={"X-Team": "sre"},
        )
    )
    assert created.id.startswith("ep_")
    assert created.uid == uid
    assert created.throttle_rate == 10
    assert sorted(created.event_types) == [
        "endpoint.disabled",
        "message.attempt.exhausted",
    ]
    assert created.metadata == {"team": "sre"}

    assert api.get(uid).id == created.id
    assert created.id in [e.id for e in api.list().data]

    updated = api.upsert(
        created.id,
        OperationalWebhookEndpointUpsertIn(url="https://ops.example/v2", disabled=True),
    )
    assert updated.url == "https://ops.example/v2"
    assert updated.disabled is True
    assert updated.event_types is None

    api.set_headers(
        uid, OperationalWebhookEndpointHeadersIn(headers={"Authorization": "Bearer x"})
    )
    headers = api.get_headers(uid)
    assert headers.headers == {}
    assert list(headers.sensitive) == ["Authorization"]

    old = api.get_secret(uid).key
    assert old.startswith("whsec_")
    assert api.rotate_secret(uid, OperationalWebhookEndpointSecretIn()) is None
    assert api.get_secret(uid).key != old
    chosen = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    api.rotate_secret(uid, OperationalWebhookEndpointSecretIn(key=chosen))
    assert api.get_secret(uid).key == chosen

    api.delete(uid)
    with pytest.raises(HttpError) as missing:
        api.get(uid)
    assert missing.value.status_code == 404


def test_an_endpoint_created_event_arrives_signed(
    client, operational_endpoints, make_app, receiver, run_id
):
    _, make = operational_endpoints
    ops = make(
        OperationalWebhookEndpointIn(
            url=receiver.url("/ops"), event_types=["endpoint.created"]
        )
    )
    secret = client.operational_webhook.endpoint.get_secret(ops.id).key

    app = make_app(f"ops-customer-{run_id}", uid=f"ops-customer-{run_id}")
    endpoint = client.endpoint.create(
        app.id, EndpointIn(url="https://customer.example/hook", uid="billing")
    )

    def about_ours():
        for delivery in receiver.deliveries("/ops"):
            event = json.loads(delivery.body)
            if event["data"]["endpointId"] == endpoint.id:
                return delivery, event
        return None

    delivery, event = wait_for(
        about_ours,
        DELIVERY_TIMEOUT,
        lambda: f"no endpoint.created for {endpoint.id}; got {receiver.deliveries('/ops')}",
    )
    verified = standardwebhooks.Webhook(secret).verify(
        delivery.body, delivery.header_family("webhook")
    )
    assert verified == event
    assert event == {
        "type": "endpoint.created",
        "data": {
            "appId": app.id,
            "appUid": app.uid,
            "endpointId": endpoint.id,
            "endpointUid": "billing",
        },
    }
    with pytest.raises(WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "A" * 43 + "=").verify(
            delivery.body, delivery.header_family("webhook")
        )
    # Only the subscribed type: creating the endpoint was not followed by anything else.
    assert {json.loads(d.body)["type"] for d in receiver.deliveries("/ops")} == {
        "endpoint.created"
    }
