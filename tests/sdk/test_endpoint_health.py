"""Endpoint health and the operational events it sends, through the Svix SDK: an endpoint
that keeps failing is reported `message.attempt.failing` at its 3rd, 5th and 10th failure in
a row, disabled automatically at the 10th (`endpoint.disabled`, trigger `automatic`), and,
once enabled again and succeeding, reported `endpoint.enabled` and
`message.attempt.recovered`. Every operational delivery is verified with standardwebhooks,
and the SDK decodes the endpoint, its stats and its attempt stats with hookd's `health`.

The shared server (run.sh) retries after 1 s, 1 s and 1 s, and leaves auto-disable off; the
endpoint here turns it on for itself with hookd's `autoDisableAfterFailures` field, which
the SDK's models do not have, so that one request is made with httpx.
"""

import json
import os

import httpx
import pytest
import standardwebhooks
from svix.api import (
    EndpointIn,
    EndpointPatch,
    MessageIn,
    OperationalWebhookEndpointIn,
)
from svix.exceptions import HttpError

from receiver import wait_for

TIMEOUT = 40.0
FAILING = "message.attempt.failing"


@pytest.fixture
def operational_endpoint(client, receiver):
    """An operational endpoint of this test's receiver, deleted when the test ends."""
    api = client.operational_webhook.endpoint
    ops = api.create(OperationalWebhookEndpointIn(url=receiver.url("/ops")))
    yield ops, api.get_secret(ops.id).key
    try:
        api.delete(ops.id)
    except HttpError:
        pass


def test_failing_endpoint_is_reported_disabled_and_recovered(
    client, make_app, receiver, operational_endpoint, run_id
):
    ops, secret = operational_endpoint
    app = make_app(f"health-{run_id}", uid=f"health-{run_id}")
    endpoint = client.endpoint.create(
        app.id, EndpointIn(url=receiver.url("/flaky"), uid="flaky")
    )
    response = httpx.patch(
        f"{os.environ['HOOKD_URL']}/api/v1/app/{app.id}/endpoint/{endpoint.id}",
        headers={"Authorization": f"Bearer {os.environ['HOOKD_TOKEN']}"},
        json={"autoDisableAfterFailures": 10},
    )
    assert response.status_code == 200, response.text
    assert response.json()["autoDisableAfterFailures"] == 10

    # Failures until the endpoint is disabled. Four messages of four attempts each (1 s
    # apart, the four messages' attempts side by side) make sixteen attempts: the tenth
    # failure comes in the third round, whose other attempts may still be in flight and
    # fail too; the fourth round waits, parked, for the endpoint to be enabled.
    receiver.script("/flaky", *([500] * 100))
    for n in range(4):
        client.message.create(app.id, MessageIn(event_type="health.test", payload={"n": n}))

    def events():
        """Operational events about this test's endpoint, verified, in the order written."""
        found = []
        for delivery in receiver.deliveries("/ops"):
            event = standardwebhooks.Webhook(secret).verify(
                delivery.body, delivery.header_family("webhook")
            )
            if event["data"].get("endpointId") == endpoint.id:
                # A message id grows with the order its event was written in.
                found.append((delivery.msg_id, event))
        # Operational deliveries may be repeated (at least once): one per message.
        unique = dict(sorted(found, key=lambda pair: pair[0]))
        return list(unique.values())

    def of_type(kind):
        return [e for e in events() if e["type"] == kind]

    disabled = wait_for(
        lambda: of_type("endpoint.disabled"),
        TIMEOUT,
        lambda: f"no endpoint.disabled; events: {[e['type'] for e in events()]}",
    )
    assert disabled[0]["data"]["trigger"] == "automatic"
    assert disabled[0]["data"]["reason"] == "consecutiveFailures"
    assert disabled[0]["data"]["appId"] == app.id
    assert disabled[0]["data"]["endpointUid"] == "flaky"
    assert disabled[0]["data"]["failSince"]
    failing = wait_for(
        lambda: len(of_type(FAILING)) == 3 and of_type(FAILING),
        TIMEOUT,
        lambda: f"not three failing events: {[e['type'] for e in events()]}",
    )
    assert [e["data"]["lastAttempt"]["responseStatusCode"] for e in failing] == [500] * 3
    kinds = [e["type"] for e in events()]
    assert kinds.index("endpoint.disabled") > max(
        i for i, kind in enumerate(kinds) if kind == FAILING
    ), kinds

    receiver.script("/flaky")  # 200 from now on
    read = client.endpoint.get(app.id, endpoint.id)
    assert read.disabled is True
    stats = client.endpoint.get_stats(app.id, endpoint.id)
    assert stats.pending >= 1  # the parked deliveries
    counted = client.endpoint.get_attempt_stats(app.id, endpoint.id)
    assert counted.success == 0 and 10 <= counted.fail <= 12, counted
    assert counted.canceled == 0
    raw = httpx.get(
        f"{os.environ['HOOKD_URL']}/api/v1/app/{app.id}/endpoint/{endpoint.id}",
        headers={"Authorization": f"Bearer {os.environ['HOOKD_TOKEN']}"},
    ).json()
    assert raw["health"]["state"] == "disabled"
    assert raw["health"]["consecutiveFailures"] == counted.fail

    # Enabled again: the parked deliveries go out and succeed.
    client.endpoint.patch(app.id, endpoint.id, EndpointPatch(disabled=False))
    wait_for(
        lambda: of_type("message.attempt.recovered"),
        TIMEOUT,
        lambda: f"no message.attempt.recovered; events: {[e['type'] for e in events()]}",
    )
    assert len(of_type("endpoint.enabled")) == 1
    kinds = [e["type"] for e in events()]
    assert kinds.index("endpoint.enabled") > kinds.index("endpoint.disabled"), kinds
    assert kinds.count(FAILING) == 3, kinds
    assert kinds.count("endpoint.disabled") == 1, kinds
    after = client.endpoint.get_attempt_stats(app.id, endpoint.id)
    assert after.fail == counted.fail and after.success >= 1, after
    for change in of_type("endpoint.health.changed"):
        assert set(change["data"]) >= {"previous", "state", "consecutiveFailures"}
    print(json.dumps([e["type"] for e in events()]))
