"""`message.precheck` (precheck/active) through the SDK: whether any enabled endpoint would get
a message of this event type and these channels."""

from svix.api import EndpointIn, EndpointPatch, MessagePrecheckIn


def test_precheck_follows_filters_and_disabled_endpoints(client, run_id, make_app):
    app = make_app(f"SDK precheck {run_id}", f"sdk-precheck-app-{run_id}")

    def active(event_type, channels=None):
        out = client.message.precheck(
            app.id, MessagePrecheckIn(event_type=event_type, channels=channels)
        )
        return out.active

    assert active("invoice.paid") is False
    ep = client.endpoint.create(
        app.id,
        EndpointIn(
            url="https://example.com/hookd-sdk/precheck",
            event_types=["invoice.paid"],
            channels=["eu"],
        ),
    )
    assert active("invoice.paid", ["eu"]) is True
    assert active("invoice.paid", ["us"]) is False
    assert active("invoice.voided", ["eu"]) is False
    client.endpoint.patch(app.id, ep.id, EndpointPatch(disabled=True))
    assert active("invoice.paid", ["eu"]) is False
    client.endpoint.patch(app.id, ep.id, EndpointPatch(disabled=False))
    assert active("invoice.paid", ["eu"]) is True
