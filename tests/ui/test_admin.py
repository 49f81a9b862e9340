"""The admin UI, clicked through in a real browser: sign in, create an application, add an
endpoint, send a message, see the attempt, resend it, rotate the secret; the admin pages;
layout at desktop and phone widths with long URLs and a 10 KB payload."""

import re
import time
import uuid

from playwright.sync_api import expect

from conftest import PHONE, open_page, sign_in


def no_horizontal_overflow(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport, f"{page.url}: the page is {width}px wide in a {viewport}px window"


def test_sign_in_refuses_a_wrong_token_and_keeps_the_token_out_of_the_url(page, base_url, admin_token, screens):
    page.goto(f"{base_url}/ui")
    expect(page.get_by_role("heading", name="Sign in to hookd")).to_be_visible()
    screens.shot(page, "sign-in")
    page.expected_refusals = {401}
    page.get_by_label("API token").fill("hk_not_a_token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid token")
    page.get_by_label("API token").fill(admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    assert admin_token not in page.url
    stored = page.evaluate("sessionStorage.getItem('hookd.token')")
    assert stored == admin_token
    assert page.evaluate("document.cookie") == ""
    # Signing out forgets it.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to hookd")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('hookd.token')") is None


def test_click_through_app_endpoint_message_attempt_resend_rotate(page, base_url, admin_token, api, receiver, screens):
    sign_in(page, base_url, admin_token)
    screens.shot(page, "overview-empty")

    # Create an application.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Applications").click()
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    screens.shot(page, "applications")
    name = f"Acme {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create application").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    screens.shot(page, "application")
    app_id = re.search(r"/ui/app/(app_[0-9A-Z]+)$", page.url).group(1)

    # Bad input gets the API's message.
    page.expected_refusals = {422}
    page.get_by_label("URL").fill("notaurl://x")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator(".error")).to_contain_text("url")

    # Add an endpoint.
    page.get_by_label("URL").fill(receiver.url("/ok/acme"))
    page.get_by_label("Description").fill("orders")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("heading", name=receiver.url("/ok/acme"))).to_be_visible()
    endpoint_id = re.search(r"/endpoint/(ep_[0-9A-Z]+)$", page.url).group(1)

    # Send a message from the messages page.
    page.get_by_role("link", name=name).click()
    page.get_by_role("link", name="Messages and sending →").click()
    expect(page.get_by_role("heading", name="Messages")).to_be_visible()
    page.get_by_label("Event type", exact=True).fill("invoice.paid")
    page.get_by_label("Payload (a JSON object)").fill('{"invoice": "in_42", "amount": 1250}')
    page.get_by_role("button", name="Send message").click()
    expect(page.get_by_role("heading", name=re.compile("^Message msg_"))).to_be_visible()
    msg_id = re.search(r"/msg/(msg_[0-9A-Z]+)$", page.url).group(1)
    expect(page.locator("pre.code")).to_contain_text('"invoice": "in_42"')

    # The attempt shows once it is made.
    attempt_link = page.locator("a[href*='/attempt/']").first
    deadline = time.time() + 15
    while not attempt_link.is_visible():
        assert time.time() < deadline, "no attempt shown"
        page.wait_for_timeout(300)
        page.reload()
    expect(page.get_by_role("cell", name="success").first).to_be_visible()
    screens.shot(page, "message")
    attempt_link.click()
    expect(page.get_by_role("heading", name=re.compile("^Attempt atmpt_"))).to_be_visible()
    expect(page.locator(".facts").first).to_contain_text("200")
    # A successful attempt does not keep its request headers, and says so.
    expect(page.get_by_text("Not kept for successful attempts")).to_be_visible()
    expect(page.locator("pre.code")).to_contain_text("thanks")
    expect(page.get_by_role("cell", name="x-receiver")).to_be_visible()
    screens.shot(page, "attempt")

    # Resend it.
    page.go_back()
    expect(page.get_by_role("heading", name=re.compile("^Message msg_"))).to_be_visible()
    before = receiver.count("/ok/acme")
    page.get_by_role("button", name="Resend").click()
    expect(page.get_by_role("status")).to_contain_text("Resent")
    deadline = time.time() + 15
    while receiver.count("/ok/acme") <= before:
        assert time.time() < deadline, "the resend was not delivered"
        time.sleep(0.1)
    attempts = api.ok("GET", f"/app/{app_id}/attempt/msg/{msg_id}")["data"]
    assert len(attempts) == 2 and any(a["triggerType"] == 1 for a in attempts), attempts

    # The endpoint: reveal and rotate the secret.
    page.goto(f"{base_url}/ui/app/{app_id}/endpoint/{endpoint_id}")
    expect(page.get_by_role("heading", name="Signing secret")).to_be_visible()
    old = api.ok("GET", f"/app/{app_id}/endpoint/{endpoint_id}/secret")["key"]
    page.get_by_role("button", name="Reveal secret").click()
    expect(page.locator("pre.code")).to_have_text(old)
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("status")).to_contain_text("Rotated")
    new = api.ok("GET", f"/app/{app_id}/endpoint/{endpoint_id}/secret")["key"]
    assert new != old and new.startswith("whsec_")
    expect(page.locator("pre.code")).to_have_text(new)

    # Settings, headers, disable and enable.
    page.get_by_label("Event types").first.fill("invoice.paid, invoice.voided")
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.url.endswith(endpoint_id)):
        page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_label("Event types").first).to_have_value("invoice.paid, invoice.voided")
    got = api.ok("GET", f"/app/{app_id}/endpoint/{endpoint_id}")
    assert got["eventTypes"] == ["invoice.paid", "invoice.voided"], got
    page.get_by_label("Name", exact=True).fill("X-Team")
    page.get_by_label("Value", exact=True).fill("billing")
    page.get_by_role("button", name="Set header").click()
    expect(page.get_by_role("cell", name="billing")).to_be_visible()
    assert api.ok("GET", f"/app/{app_id}/endpoint/{endpoint_id}/headers")["headers"] == {"X-Team": "billing"}
    page.get_by_role("button", name="Disable endpoint").click()
    expect(page.get_by_role("button", name="Enable endpoint")).to_be_visible()
    assert api.ok("GET", f"/app/{app_id}/endpoint/{endpoint_id}")["disabled"] is True
    page.get_by_role("button", name="Enable endpoint").click()
    expect(page.get_by_role("button", name="Disable endpoint")).to_be_visible()
    page.get_by_role("button", name="Reveal secret").click()
    expect(page.locator("pre.code")).to_have_text(new)
    screens.shot(page, "endpoint")
    page.evaluate("window.scrollTo(0, 0)")
    screens.shot(page, "ui-endpoint", full_page=False)

    # Send an example, then the messages list filtered by event type.
    page.get_by_label("Event type", exact=True).fill("invoice.voided")
    page.get_by_role("button", name="Send example").click()
    expect(page.get_by_role("status")).to_contain_text("Sent")
    page.goto(f"{base_url}/ui/app/{app_id}/msg")
    page.get_by_label("Event types").fill("invoice.voided")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"eventType=invoice\.voided"))
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody")).to_contain_text("invoice.voided")
    screens.shot(page, "messages")


def test_admin_pages(page, base_url, admin_token, api, receiver, screens):
    app = api.ok("POST", "/app", {"name": f"Pages {uuid.uuid4().hex[:6]}"})
    failing = api.ok("POST", f"/app/{app['id']}/endpoint", {"url": receiver.url("/fail/pages")})
    api.ok("POST", f"/app/{app['id']}/msg", {"eventType": "order.created", "payload": {"id": 1}})
    sign_in(page, base_url, admin_token)
    # The overview lists the failing endpoint once its attempt is recorded.
    deadline = time.time() + 15
    while not page.get_by_text(failing["url"]).first.is_visible():
        assert time.time() < deadline, "the failing endpoint is not on the overview"
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator("svg.chart")).to_have_count(2)
    screens.shot(page, "overview")
    # The README's picture (docs/ui-overview.png): what fits in a 1280x800 window.
    screens.shot(page, "ui-overview", full_page=False)

    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Event types").click()
    page.get_by_label("Name").fill(f"order.shipped.{uuid.uuid4().hex[:4]}")
    page.get_by_label("Description").fill("An order left the warehouse")
    page.get_by_label("Schema, version 1 (JSON Schema)").fill('{"type": "object"}')
    page.get_by_role("button", name="Create event type").click()
    expect(page.get_by_role("cell", name="An order left the warehouse")).to_be_visible()
    screens.shot(page, "event-types")

    nav.get_by_role("link", name="Operational webhooks").click()
    page.get_by_label("URL").fill(receiver.url("/ok/ops"))
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("cell", name=receiver.url("/ok/ops"))).to_be_visible()
    screens.shot(page, "operational")

    nav.get_by_role("link", name="Monitors").click()
    page.get_by_label("Name").fill("nightly import")
    page.get_by_label("Application").fill(app["id"])
    page.get_by_label("Longest silence (seconds)").fill("90000")
    page.get_by_role("button", name="Create monitor").click()
    expect(page.get_by_role("cell", name="nightly import")).to_be_visible()
    # A monitor of an ingest source.
    source = api.ok("POST", "/ingest/api/v1/source", {"name": "Inbound hooks", "type": "generic-webhook"})
    page.get_by_label("Name").fill("inbound quiet")
    page.get_by_label("Ingest source").fill(source["id"])
    page.get_by_label("Longest silence (seconds)").fill("3600")
    page.get_by_role("button", name="Create monitor").click()
    row = page.get_by_role("row").filter(has_text="inbound quiet")
    expect(row).to_contain_text(f"source {source['id']}")
    screens.shot(page, "monitors")

    nav.get_by_role("link", name="Entity types").click()
    page.get_by_label("Name").fill("product")
    page.get_by_role("button", name="Save entity type").click()
    expect(page.get_by_role("cell", name="product", exact=True)).to_be_visible()
    screens.shot(page, "entity-types")

    nav.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("ci reader")
    page.get_by_label("app:read").check()
    page.get_by_role("button", name="Create token").click()
    token = page.locator("pre.code").inner_text()
    assert token.startswith("hk_")
    status, who = api.call("GET", "/auth/whoami", token=token)
    assert status == 200 and who["abilities"] == ["app:read"], who
    page.get_by_role("link", name="Done").click()
    row = page.get_by_role("row").filter(has_text="ci reader")
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("row").filter(has_text="ci reader")).to_have_count(0)
    status, _ = api.call("GET", "/auth/whoami", token=token)
    assert status == 401
    screens.shot(page, "tokens")


def test_long_urls_and_big_payloads_fit_desktop_and_phone(browser, base_url, admin_token, api, receiver, screens):
    app = api.ok("POST", "/app", {"name": "Layout " + "very-long-name-" * 8})
    long_url = receiver.url("/ok/" + "segment-without-breaks" * 15 + "?q=" + "x" * 120)
    api.ok("POST", f"/app/{app['id']}/endpoint", {"url": long_url})
    payload = {"blob": "y" * 10_000, "nested": {"key": "z" * 300}}
    msg = api.ok("POST", f"/app/{app['id']}/msg", {"eventType": "layout.check", "payload": payload})
    for name, viewport in [("desktop", None), ("phone", PHONE)]:
        context, page, errors = open_page(browser, viewport or {"width": 1280, "height": 800})
        try:
            page.goto(f"{base_url}/ui")
            page.get_by_label("API token").fill(admin_token)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            for path, label in [
                (f"/ui/app/{app['id']}", "app"),
                (f"/ui/app/{app['id']}/msg/{msg['id']}", "message"),
                (f"/ui/app/{app['id']}/msg", "messages"),
            ]:
                page.goto(f"{base_url}{path}")
                expect(page.locator(".view h1")).to_be_visible()
                no_horizontal_overflow(page)
                screens.shot(page, f"layout-{label}-{name}")
        finally:
            context.close()
        assert not errors, "\n".join(errors)


def all_app_ids(api):
    ids, iterator = [], None
    while True:
        page = api.ok("GET", "/app?limit=250" + (f"&iterator={iterator}" if iterator else ""))
        ids += [a["id"] for a in page["data"]]
        if page["done"]:
            return ids
        iterator = page["iterator"]


def test_lists_page_through_the_api_iterators(page, base_url, admin_token, api):
    for i in range(30):
        api.ok("POST", "/app", {"name": f"Paged {i:02d} {uuid.uuid4().hex[:4]}"})
    expected = all_app_ids(api)
    sign_in(page, base_url, admin_token)
    page.goto(f"{base_url}/ui/apps")
    seen, first_page = [], None
    while True:
        expect(page.locator("tbody tr").first).to_be_visible()
        ids = page.locator("tbody tr td:nth-child(3) code").all_inner_texts()
        assert 0 < len(ids) <= 25
        first_page = first_page or ids
        seen += ids
        following = page.get_by_role("link", name="Next →")
        if following.count() == 0:
            break
        following.click()
        expect(page).to_have_url(re.compile(r"iterator="))
        expect(page.locator("tbody tr td:nth-child(3) code").first).not_to_have_text(ids[0])
    assert seen == expected, "every application once, in the API's order"
    # Back to the start.
    while page.get_by_role("link", name="← Previous").count():
        shown = page.locator("tbody tr td:nth-child(3) code").first.inner_text()
        page.get_by_role("link", name="← Previous").click()
        expect(page.locator("tbody tr td:nth-child(3) code").first).not_to_have_text(shown)
    assert page.locator("tbody tr td:nth-child(3) code").all_inner_texts() == first_page


def test_usable_with_the_keyboard_alone(page, base_url, admin_token):
    page.goto(f"{base_url}/ui")
    # The token field has the focus: type and press Enter.
    page.keyboard.type(admin_token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # Tab to the Applications link and follow it.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Applications":
            break
    else:
        raise AssertionError("the Applications link is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    # The new page has the focus, so Tab goes on from its start; the form can be filled
    # and sent without a pointer.
    page.get_by_label("Name").focus()
    page.keyboard.type("Keyboard Co")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Keyboard Co")).to_be_visible()


def test_a_named_token_sees_the_pages_its_abilities_allow(page, base_url, api):
    made = api.ok("POST", "/auth/token", {"name": "reader", "abilities": ["app:read", "endpoint:read", "message:read"]})
    page.goto(f"{base_url}/ui")
    page.get_by_label("API token").fill(made["token"])
    page.get_by_role("button", name="Sign in").click()
    # No overview (admin only): it starts at the applications.
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Applications"])
    # An admin page it opens anyway is refused by the API.
    page.expected_refusals = {403}
    page.goto(f"{base_url}/ui/tokens")
    expect(page.get_by_role("alert")).to_contain_text("lacks the `admin` ability")
    expect(page.locator("table")).to_have_count(0)


def test_data_is_shown_as_text_never_run(page, base_url, admin_token, api, receiver):
    evil = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    app = api.ok("POST", "/app", {"name": evil})
    api.ok("POST", f"/app/{app['id']}/endpoint", {"url": receiver.url("/ok/evil"), "description": evil})
    msg = api.ok("POST", f"/app/{app['id']}/msg", {"eventType": "evil.test", "payload": {"html": evil}})
    sign_in(page, base_url, admin_token)
    for path in [f"/ui/app/{app['id']}", f"/ui/app/{app['id']}/msg/{msg['id']}", f"/ui/app/{app['id']}/msg"]:
        page.goto(base_url + path)
        expect(page.locator(".view h1")).to_be_visible()
        expect(page.get_by_text(evil).first).to_be_visible()
        assert page.locator(".view img, .view script").count() == 0
        assert page.title() != "pwned" and page.title().endswith(" · hookd"), page.title()


def test_edit_and_delete_an_application_an_endpoint_an_event_type_and_a_monitor(page, base_url, admin_token, api, receiver, screens):
    app = api.ok("POST", "/app", {"name": f"Renamed {uuid.uuid4().hex[:6]}"})
    keep = api.ok("POST", f"/app/{app['id']}/endpoint", {"url": receiver.url("/ok/keep")})
    doomed = api.ok("POST", f"/app/{app['id']}/endpoint", {"url": receiver.url("/ok/doomed")})
    sign_in(page, base_url, admin_token)

    # Rename the application and give it a UID.
    page.goto(f"{base_url}/ui/app/{app['id']}")
    form = page.locator("form").filter(has=page.get_by_role("heading", name="Edit application"))
    new_name = f"Renamed to {uuid.uuid4().hex[:6]}"
    form.get_by_label("Name").fill(new_name)
    uid = f"ren-{uuid.uuid4().hex[:6]}"
    form.get_by_label("UID").fill(uid)
    form.get_by_role("button", name="Save application").click()
    expect(page.get_by_role("heading", name=new_name, level=1)).to_be_visible()
    expect(page.locator(".facts")).to_contain_text(uid)
    screens.shot(page, "application-edit")
    assert api.ok("GET", f"/app/{app['id']}")["name"] == new_name
    # A bad UID gets the API's field error.
    page.expected_refusals = {422, 404}
    form.get_by_label("UID").fill("not a uid!")
    form.get_by_role("button", name="Save application").click()
    expect(form.locator(".error")).to_contain_text("uid")

    # Delete an endpoint: back on the application, without it.
    page.goto(f"{base_url}/ui/app/{app['id']}/endpoint/{doomed['id']}")
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_role("heading", name=new_name, level=1)).to_be_visible()
    expect(page.get_by_role("link", name=keep["url"])).to_be_visible()
    expect(page.get_by_role("link", name=doomed["url"])).to_have_count(0)
    status, _ = api.call("GET", f"/app/{app['id']}/endpoint/{doomed['id']}")
    assert status == 404

    # Delete the application: off the list, and its page shows the API's 404.
    page.get_by_role("button", name="Delete application").click()
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    expect(page.get_by_role("link", name=new_name)).to_have_count(0)
    page.goto(f"{base_url}/ui/app/{app['id']}")
    expect(page.get_by_role("alert")).to_contain_text("application not found")
    screens.shot(page, "application-deleted")

    # Archive an event type, unarchive it, delete another.
    kept = f"edit.kept.{uuid.uuid4().hex[:4]}"
    gone = f"edit.gone.{uuid.uuid4().hex[:4]}"
    api.ok("POST", "/event-type", {"name": kept, "description": "kept"})
    api.ok("POST", "/event-type", {"name": gone, "description": "gone"})
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Event types").click()
    row = page.get_by_role("row").filter(has_text=kept)
    row.get_by_role("button", name="Archive").click()
    expect(row).to_contain_text("archived")
    expect(row.get_by_role("button", name="Unarchive")).to_be_visible()
    assert api.ok("GET", f"/event-type/{kept}")["archived"] is True
    screens.shot(page, "event-types-archived")
    row.get_by_role("button", name="Unarchive").click()
    expect(row).to_contain_text("active")
    page.get_by_role("row").filter(has_text=gone).get_by_role("button", name="Delete").click()
    expect(page.get_by_role("row").filter(has_text=gone)).to_have_count(0)
    status, _ = api.call("GET", f"/event-type/{gone}")
    assert status == 404

    # Edit a monitor's name and longest silence.
    other = api.ok("POST", "/app", {"name": f"Watched {uuid.uuid4().hex[:6]}"})
    monitor = api.ok("POST", "/monitor", {"name": f"quiet {uuid.uuid4().hex[:6]}", "app": other["id"], "maxSilence": 3600})
    nav.get_by_role("link", name="Monitors").click()
    page.get_by_role("row").filter(has_text=monitor["name"]).get_by_role("button", name="Edit").click()
    form = page.locator("form").filter(has=page.get_by_role("heading", name=re.compile("^Edit monitor")))
    renamed = f"louder {uuid.uuid4().hex[:6]}"
    form.get_by_label("Name").fill(renamed)
    form.get_by_label("Longest silence (seconds)").fill("7200")
    screens.shot(page, "monitor-edit")
    form.get_by_role("button", name="Save monitor").click()
    row = page.get_by_role("row").filter(has_text=renamed)
    expect(row).to_contain_text("a message every 2 h")
    saved = api.ok("GET", f"/monitor/{monitor['id']}")
    assert saved["name"] == renamed and saved["maxSilence"] == 7200, saved
    # A monitor of an ingest source keeps watching it.
    source = api.ok("POST", "/ingest/api/v1/source", {"name": "Edited watch", "type": "generic-webhook"})
    watch = api.ok("POST", "/monitor", {"name": f"watch {uuid.uuid4().hex[:6]}", "source": source["id"], "maxSilence": 600})
    page.reload()
    page.get_by_role("row").filter(has_text=watch["name"]).get_by_role("button", name="Edit").click()
    form.get_by_label("Longest silence (seconds)").fill("1200")
    form.get_by_role("button", name="Save monitor").click()
    row = page.get_by_role("row").filter(has_text=watch["name"])
    expect(row).to_contain_text("a message every 20 min")
    expect(row).to_contain_text(f"source {source['id']}")
