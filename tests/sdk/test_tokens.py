"""App portal tokens through the SDK's `authentication` routes: app-portal-access, what such
a token may reach, expire-all, logout and whoami."""

import os

import httpx
import pytest
from svix.api import (
    ApplicationIn,
    ApplicationTokenExpireIn,
    AppPortalAccessIn,
    AppPortalCapability,
    EndpointIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError


def as_client(token: str) -> Svix:
    """A client of the running hookd with `token`, without retries (as the `client` fixture)."""
    url = os.environ["HOOKD_URL"]
    return Svix(token, SvixOptions(server_url=url, retry_schedule=[], timeout=10.0))


def status_of(call) -> int:
    """The HTTP status of the error `call` raises."""
    with pytest.raises(HttpError) as exc:
        call()
    return exc.value.status_code


def portal_token(client, app_id: str, **kwargs) -> str:
    out = client.authentication.app_portal_access(app_id, AppPortalAccessIn(**kwargs))
    assert out.token and out.token.startswith("hk_"), out
    # The portal page of the application (by its id, even when given a uid), the token in
    # the fragment.
    assert "/ui/portal/app_" in out.url and out.url.endswith(f"#token={out.token}"), out.url
    return out.token


def test_a_portal_token_reaches_its_application_only(client, run_id, make_app):
    app = make_app(f"SDK tokens {run_id}", f"sdk-tok-app-{run_id}")
    other = make_app(f"SDK tokens other {run_id}", f"sdk-tok-other-{run_id}")
    client.endpoint.create(app.id, EndpointIn(url="https://example.com/hook"))

    portal = as_client(portal_token(client, app.id))
    assert portal.application.get(app.id).id == app.id
    # By uid too: the path's uid names the token's application.
    assert portal.application.get(app.uid).id == app.id
    endpoints = portal.endpoint.list(app.id)
    assert [e.url for e in endpoints.data] == ["https://example.com/hook"]
    # Every capability by default: it may create an endpoint in its application.
    portal.endpoint.create(app.id, EndpointIn(url="https://example.com/portal"))

    # Another application is as if it did not exist, by id or uid.
    assert status_of(lambda: portal.application.get(other.id)) == 404
    assert status_of(lambda: portal.endpoint.list(other.uid)) == 404
    # Routes outside applications are forbidden.
    assert status_of(lambda: portal.application.list()) == 403

    # ViewBase only: it may read but not create an endpoint.
    viewer = as_client(
        portal_token(client, app.id, capabilities=[AppPortalCapability.VIEW_BASE])
    )
    assert len(viewer.endpoint.list(app.id).data) == 2
    assert (
        status_of(
            lambda: viewer.endpoint.create(
                app.id, EndpointIn(url="https://example.com/denied")
            )
        )
        == 403
    )
    assert len(client.endpoint.list(app.id).data) == 2


def test_a_portal_token_can_create_its_application(client, run_id):
    uid = f"sdk-tok-new-{run_id}"
    token = portal_token(
        client, uid, application=ApplicationIn(name=f"SDK tokens new {run_id}")
    )
    try:
        app = as_client(token).application.get(uid)
        assert app.uid == uid
        assert as_client(token).application.get(app.id).id == app.id
    finally:
        client.application.delete(uid)


def test_expire_all_ends_an_applications_portal_tokens(client, run_id, make_app):
    app = make_app(f"SDK tokens expire {run_id}", f"sdk-tok-exp-{run_id}")
    other = make_app(f"SDK tokens expire other {run_id}", f"sdk-tok-exp-o-{run_id}")
    portal = as_client(portal_token(client, app.id))
    spared = as_client(portal_token(client, other.id))
    assert portal.application.get(app.id).id == app.id

    client.authentication.expire_all(app.id, ApplicationTokenExpireIn(expiry=0))

    assert status_of(lambda: portal.application.get(app.id)) == 401
    assert status_of(lambda: portal.endpoint.list(app.id)) == 401
    # Another application's tokens still work.
    assert spared.application.get(other.id).id == other.id


def test_expire_all_with_session_ids(client, run_id, make_app):
    app = make_app(f"SDK tokens sessions {run_id}", f"sdk-tok-ses-{run_id}")
    ended = as_client(portal_token(client, app.id, session_id=f"s1-{run_id}"))
    kept = as_client(portal_token(client, app.id, session_id=f"s2-{run_id}"))

    client.authentication.expire_all(
        app.id, ApplicationTokenExpireIn(expiry=0, session_ids=[f"s1-{run_id}"])
    )

    assert status_of(lambda: ended.application.get(app.id)) == 401
    assert kept.application.get(app.id).id == app.id


def test_logout_revokes_the_calling_token(client, run_id, make_app):
    app = make_app(f"SDK tokens logout {run_id}", f"sdk-tok-out-{run_id}")
    portal = as_client(portal_token(client, app.id))
    other = as_client(portal_token(client, app.id))
    assert portal.application.get(app.id).id == app.id

    portal.authentication.logout()

    assert status_of(lambda: portal.application.get(app.id)) == 401
    assert status_of(lambda: portal.authentication.logout()) == 401
    # Only the calling token.
    assert other.application.get(app.id).id == app.id
    # The admin token cannot log out.
    assert status_of(lambda: client.authentication.logout()) == 403
    assert client.application.get(app.id).id == app.id


def test_whoami(client, run_id, make_app):
    if not hasattr(client.authentication, "whoami"):
        pytest.skip("this svix SDK has no authentication.whoami")
    app = make_app(f"SDK tokens whoami {run_id}", f"sdk-tok-who-{run_id}")
    me = as_client(portal_token(client, app.id, session_id=f"who-{run_id}"))
    out = me.authentication.whoami()
    assert out.app_id == app.id


def test_whoami_over_http(client, run_id, make_app):
    """The route the SDK has no method for (2.9.1), called directly."""
    app = make_app(f"SDK tokens whoami http {run_id}", f"sdk-tok-whh-{run_id}")
    token = portal_token(
        client,
        app.id,
        session_id=f"who-{run_id}",
        capabilities=[AppPortalCapability.VIEW_BASE],
    )
    url = os.environ["HOOKD_URL"] + "/api/v1/auth/whoami"
    me = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["appId"] == app.id, body
    assert body["sessionId"] == f"who-{run_id}", body
    assert body["permissionSource"] == "RegionalAuthToken", body
    assert body["tokenId"].startswith("tok_"), body
    assert "endpoint:write" not in body["abilities"], body
    # A portal token's answers report its hourly rate limit.
    assert int(me.headers["x-ratelimit-limit"]) > 0, me.headers
    admin = httpx.get(
        url, headers={"Authorization": f"Bearer {os.environ['HOOKD_TOKEN']}"}, timeout=10
    )
    assert admin.json()["permissionSource"] == "GlobalAuthToken", admin.text
    assert "x-ratelimit-limit" not in admin.headers
