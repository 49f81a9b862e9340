"""The customer portal: the link `POST /api/v1/auth/app-portal-access/{app}` hands out opens
the UI limited to that one application. Another application and the admin pages are refused
by the API, and the page shows the refusal, not data. Read-only links cannot change anything;
expired links sign in no more."""

import re
import uuid

from playwright.sync_api import expect

from conftest import open_page, unexpected


def make_app(api, receiver, label):
    app = api.ok("POST", "/app", {"name": f"{label} {uuid.uuid4().hex[:6]}"})
    endpoint = api.ok("POST", f"/app/{app['id']}/endpoint", {"url": receiver.url(f"/ok/{label}")})
    msg = api.ok("POST", f"/app/{app['id']}/msg", {"eventType": f"{label}.happened", "payload": {"who": label}})
    return app, endpoint, msg


def test_the_portal_shows_one_application_and_nothing_else(browser, base_url, api, receiver, screens):
    mine, my_endpoint, my_msg = make_app(api, receiver, "mine")
    other, other_endpoint, _ = make_app(api, receiver, "other")
    access = api.ok("POST", f"/auth/app-portal-access/{mine['id']}", {})
    assert access["url"].endswith(f"/ui/portal/{mine['id']}#token={access['token']}")
    url = base_url + access["url"][access["url"].index("/ui/portal/"):]

    context, page, errors = open_page(browser)
    try:
        page.goto(url)
        expect(page.get_by_role("heading", name=mine["name"])).to_be_visible()
        # The token left the address for the tab's session storage.
        assert page.url == f"{base_url}/ui/app/{mine['id']}", page.url
        assert "token" not in page.url
        assert page.evaluate("sessionStorage.getItem('hookd.token')") == access["token"]
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link")).to_have_text(["Endpoints", "Messages", "Event types"])
        expect(page.get_by_role("heading", name="Customer portal")).to_have_count(0)
        expect(page.get_by_role("cell", name=my_endpoint["url"])).to_be_visible()
        screens.shot(page, "portal-app")

        nav.get_by_role("link", name="Messages").click()
        expect(page.get_by_role("cell", name="mine.happened")).to_be_visible()
        page.get_by_role("link", name=re.compile(".")).filter(has=page.locator("time")).first.click()
        expect(page.get_by_role("heading", name=f"Message {my_msg['id']}")).to_be_visible()
        screens.shot(page, "portal-message")

        # The endpoint and its secret (the default capabilities include reading secrets).
        page.goto(f"{base_url}/ui/app/{mine['id']}/endpoint/{my_endpoint['id']}")
        page.get_by_role("button", name="Reveal secret").click()
        expect(page.locator("pre.code")).to_contain_text("whsec_")
        screens.shot(page, "portal-endpoint")

        # Another application: the API answers 404, as if it did not exist.
        for path in [
            f"/ui/app/{other['id']}",
            f"/ui/app/{other['id']}/msg",
            f"/ui/app/{other['id']}/endpoint/{other_endpoint['id']}",
        ]:
            page.goto(base_url + path)
            expect(page.get_by_role("alert")).to_contain_text("not found")
            expect(page.get_by_text(other["name"])).to_have_count(0)
            expect(page.get_by_text(other_endpoint["url"])).to_have_count(0)
        screens.shot(page, "portal-other-app-refused")

        # The admin pages: the API answers 403.
        # (Entity types and event types are shared read routes the API lets it read.)
        for path in ["/ui/apps", "/ui/tokens", "/ui/monitors", "/ui/operational"]:
            page.goto(base_url + path)
            expect(page.get_by_role("alert")).to_contain_text(f"limited to application {mine['id']}")
            expect(page.locator("table")).to_have_count(0)
        screens.shot(page, "portal-admin-refused")
        # Event types are read, not changed, from a portal.
        shared = f"portal.seen.{uuid.uuid4().hex[:4]}"
        api.ok("POST", "/event-type", {"name": shared, "description": "seen from a portal"})
        page.goto(f"{base_url}/ui/event-types")
        expect(page.get_by_role("cell", name=shared)).to_be_visible()
        expect(page.get_by_role("button", name="Archive")).to_have_count(0)
        expect(page.get_by_role("button", name="Delete")).to_have_count(0)
        # The overview is not shown to it: the start page is its application.
        page.goto(f"{base_url}/ui")
        expect(page.get_by_role("heading", name=mine["name"])).to_be_visible()
    finally:
        context.close()
    left = unexpected(errors, {403, 404})
    assert not left, "\n".join(left)


def test_a_read_only_portal_link_cannot_change_anything(browser, base_url, api, receiver, screens):
    app, endpoint, _ = make_app(api, receiver, "readonly")
    access = api.ok("POST", f"/auth/app-portal-access/{app['id']}", {"readOnly": True})
    before = api.ok("GET", f"/app/{app['id']}/endpoint/{endpoint['id']}/secret")["key"]
    context, page, errors = open_page(browser)
    try:
        page.goto(base_url + access["url"][access["url"].index("/ui/portal/"):])
        expect(page.get_by_role("heading", name=app["name"])).to_be_visible()
        # Renaming and deleting the application are an admin's; deleting an endpoint needs
        # endpoint:write: none is offered.
        expect(page.get_by_role("button", name="Save application")).to_have_count(0)
        expect(page.get_by_role("button", name="Delete application")).to_have_count(0)
        page.get_by_label("URL").fill(receiver.url("/ok/sneaky"))
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.get_by_role("alert")).to_contain_text("endpoint:write")
        page.goto(f"{base_url}/ui/app/{app['id']}/endpoint/{endpoint['id']}")
        page.get_by_role("button", name="Rotate secret").click()
        expect(page.get_by_role("alert")).to_contain_text("secret:rotate")
        expect(page.get_by_role("button", name="Delete endpoint")).to_have_count(0)
        screens.shot(page, "portal-read-only")
    finally:
        context.close()
    assert api.ok("GET", f"/app/{app['id']}/endpoint/{endpoint['id']}/secret")["key"] == before
    assert len(api.ok("GET", f"/app/{app['id']}/endpoint")["data"]) == 1
    left = unexpected(errors, {403})
    assert not left, "\n".join(left)


def test_an_expired_portal_link_signs_in_no_more(browser, base_url, api, receiver, screens):
    app, _, _ = make_app(api, receiver, "expired")
    access = api.ok("POST", f"/auth/app-portal-access/{app['id']}", {})
    api.ok("POST", f"/auth/app/{app['id']}/expire-all", {"expiry": 0})
    context, page, errors = open_page(browser)
    try:
        page.goto(base_url + access["url"][access["url"].index("/ui/portal/"):])
        expect(page.get_by_role("heading", name="Sign in to hookd")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text("expired")
        expect(page.get_by_text(app["name"])).to_have_count(0)
        assert page.evaluate("sessionStorage.getItem('hookd.token')") is None
        screens.shot(page, "portal-expired")
    finally:
        context.close()
    left = unexpected(errors, {401})
    assert not left, "\n".join(left)
