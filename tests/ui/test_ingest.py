"""Ingest sources in the admin UI: create a hookd-bearer source, add an endpoint, post to its
ingest URL (signed and not), see both requests in its log, follow the forwarded one to its
message and attempt; the URL token, the endpoint's secret, a cron source in the list, and
deleting a source."""

import json
import re
import time
import urllib.error
import urllib.request
import uuid

from playwright.sync_api import expect

from conftest import DESKTOP, PHONE, open_page, sign_in


def post(url: str, body: bytes, token=None):
    """POSTs JSON to an ingest URL as a sender would; answers (status, parsed body)."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_ingest_source_endpoint_log_message_and_attempt(page, base_url, admin_token, api, receiver, screens):
    sign_in(page, base_url, admin_token)
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Ingest sources").click()
    expect(page.get_by_role("heading", name="Ingest sources")).to_be_visible()

    # The type's template is put in the config editor; an empty token is refused (422),
    # and the API's message names the field.
    name = f"Scraper {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name").fill(name)
    page.get_by_label("Type").select_option("hookd-bearer")
    config = page.get_by_label("Config (JSON)")
    assert json.loads(config.input_value()) == {"token": ""}
    page.expected_refusals = {422}
    page.get_by_role("button", name="Create source").click()
    expect(page.locator(".error")).to_contain_text("config.token")
    screens.shot(page, "ingest-sources-new")

    token = f"tok-{uuid.uuid4().hex}"
    config.fill(json.dumps({"token": token}))
    page.get_by_role("button", name="Create source").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    source_id = re.search(r"/ui/ingest/(src_[0-9A-Z]+)$", page.url).group(1)
    source = api.ok("GET", f"/ingest/api/v1/source/{source_id}")
    assert source["type"] == "hookd-bearer" and token not in json.dumps(source)
    ingest_url = page.get_by_label("Ingest URL").input_value()
    assert ingest_url == source["ingestUrl"] and "/ingest/in/" in ingest_url

    # Copy puts the URL on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == ingest_url

    # An endpoint at the tests' receiver; its secret, revealed and rotated.
    target = receiver.url(f"/ok/ingest-{source_id}")
    page.get_by_label("URL", exact=True).fill(target)
    page.get_by_label("Description").fill("the crawler's inbox")
    page.get_by_role("button", name="Add endpoint").click()
    row = page.get_by_role("row").filter(has_text=target)
    expect(row).to_contain_text("the crawler's inbox")
    endpoints = api.ok("GET", f"/ingest/api/v1/source/{source_id}/endpoint")["data"]
    assert [e["url"] for e in endpoints] == [target]
    secret_path = f"/ingest/api/v1/source/{source_id}/endpoint/{endpoints[0]['id']}/secret"
    old = api.ok("GET", secret_path)["key"]
    row.get_by_role("button", name="Reveal secret").click()
    expect(page.locator("pre.code")).to_have_text(old)
    row.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("status")).to_contain_text("Rotated")
    new = api.ok("GET", secret_path)["key"]
    assert new != old and new.startswith("whsec_")
    expect(page.locator("pre.code")).to_have_text(new)

    # The sender posts: once with the token (forwarded), once without (refused).
    body = b'{"type": "crawl.done", "pages": 42}'
    status, out = post(ingest_url, body, token)
    assert status == 200 and out["msgId"].startswith("msg_"), (status, out)
    msg_id = out["msgId"]
    status, out = post(ingest_url, b'{"type": "crawl.done", "pages": 0}')
    assert status == 401, (status, out)

    page.reload()
    expect(page.get_by_role("heading", name="Log")).to_be_visible()
    log_rows = page.locator("table").last.locator("tbody tr")
    expect(log_rows).to_have_count(2)
    forwarded = log_rows.filter(has=page.get_by_role("link", name=msg_id))
    refused = log_rows.filter(has=page.get_by_text("refused", exact=True))
    expect(forwarded.locator("td").nth(1)).to_have_text("forwarded 200")
    expect(refused.locator("td").nth(1)).to_have_text("refused 401")
    # Why it was refused, and nothing forwarded.
    expect(refused.locator("td").nth(2)).not_to_have_text("—")
    expect(refused.locator("td").nth(4)).to_have_text("—")
    # Newest first: the refused request is the log's first row.
    expect(log_rows.first.locator("td").nth(1)).to_have_text("refused 401")
    forwarded.locator("summary").click()
    expect(forwarded.locator("pre.code")).to_contain_text('"pages": 42')
    # The sender's Authorization header is kept, redacted.
    expect(forwarded.locator("details")).to_contain_text("[redacted]")
    screens.shot(page, "ingest-source")

    # The forwarded request reached the endpoint, byte for byte.
    deadline = time.time() + 15
    while not receiver.count(f"/ok/ingest-{source_id}"):
        assert time.time() < deadline, "the forwarded request was not delivered"
        time.sleep(0.1)
    assert [b for p, _, b in receiver.requests if p == f"/ok/ingest-{source_id}"] == [body]

    # Its message, in the source's application, with the attempt.
    forwarded.get_by_role("link", name=msg_id).click()
    expect(page.get_by_role("heading", name=f"Message {msg_id}")).to_be_visible()
    assert f"/ui/app/{source['appId']}/msg/{msg_id}" in page.url
    attempt_link = page.locator("a[href*='/attempt/']").first
    deadline = time.time() + 15
    while not attempt_link.is_visible():
        assert time.time() < deadline, "no attempt shown"
        page.wait_for_timeout(300)
        page.reload()
    expect(page.get_by_role("cell", name="success").first).to_be_visible()
    screens.shot(page, "ingest-message")
    attempt_link.click()
    expect(page.get_by_role("heading", name=re.compile("^Attempt atmpt_"))).to_be_visible()
    expect(page.locator(".facts").first).to_contain_text("200")
    screens.shot(page, "ingest-attempt")
    # The crumbs lead back to the source (its application is not in the applications list).
    page.locator(".crumbs").get_by_role("link", name=f"source {source_id}").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()

    # A new URL token: the page shows the new URL; the old one keeps working.
    page.get_by_role("button", name="Rotate URL token").click()
    expect(page.get_by_role("status")).to_contain_text("Rotated")
    rotated = page.get_by_label("Ingest URL").input_value()
    assert rotated != ingest_url and rotated == api.ok("GET", f"/ingest/api/v1/source/{source_id}")["ingestUrl"]
    assert post(rotated, b'{"n": 1}', token)[0] == 200
    assert post(ingest_url, b'{"n": 2}', token)[0] == 200
    # At most three previous URLs valid at once: the fourth rotation is refused (409), and
    # the page keeps the URL it has.
    for _ in range(2):
        page.get_by_role("button", name="Rotate URL token").click()
        expect(page.get_by_role("status")).to_contain_text("Rotated")
    current = page.get_by_label("Ingest URL").input_value()
    page.expected_refusals = {409, 422}
    page.get_by_role("button", name="Rotate URL token").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert page.get_by_label("Ingest URL").input_value() == current
    assert api.ok("GET", f"/ingest/api/v1/source/{source_id}")["ingestUrl"] == current

    # Deleting the endpoint.
    page.get_by_role("row").filter(has_text=target).get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No endpoint yet")).to_be_visible()
    assert api.ok("GET", f"/ingest/api/v1/source/{source_id}/endpoint")["data"] == []


def test_ingest_list_shows_schedules_and_a_source_can_be_deleted(page, base_url, admin_token, api, screens):
    cron = api.ok(
        "POST",
        "/ingest/api/v1/source",
        {"name": f"Nightly crawl {uuid.uuid4().hex[:6]}", "type": "cron", "config": {"schedule": "0 2 * * *", "payload": '{"job": "crawl"}'}},
    )
    doomed = api.ok("POST", "/ingest/api/v1/source", {"name": f"Doomed {uuid.uuid4().hex[:6]}", "type": "generic-webhook"})
    sign_in(page, base_url, admin_token)
    page.goto(f"{base_url}/ui/ingest")
    expect(page.get_by_role("row").filter(has_text=cron["name"])).to_contain_text("cron 0 2 * * * (UTC)")
    expect(page.get_by_role("row").filter(has_text=doomed["name"])).to_contain_text(doomed["ingestUrl"])
    screens.shot(page, "ingest-sources")

    # A cron source has a schedule and no URL.
    page.get_by_role("link", name=cron["name"]).click()
    expect(page.get_by_role("heading", name=cron["name"])).to_be_visible()
    expect(page.locator(".facts").first).to_contain_text("cron 0 2 * * * (UTC)")
    expect(page.get_by_label("Ingest URL")).to_have_count(0)
    expect(page.get_by_text("No run yet.")).to_be_visible()

    page.goto(f"{base_url}/ui/ingest/{doomed['id']}")
    page.get_by_role("button", name="Delete source").click()
    expect(page.get_by_role("heading", name="Ingest sources")).to_be_visible()
    expect(page.get_by_role("link", name=doomed["name"])).to_have_count(0)
    status, _ = api.call("GET", f"/ingest/api/v1/source/{doomed['id']}")
    assert status == 404


def test_ingest_pages_show_data_as_text_and_fit_a_phone(browser, base_url, admin_token, api, receiver, screens):
    evil = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    source = api.ok("POST", "/ingest/api/v1/source", {"name": evil, "type": "generic-webhook"})
    long_url = receiver.url("/ok/" + "segment-without-breaks" * 15)
    api.ok("POST", f"/ingest/api/v1/source/{source['id']}/endpoint", {"url": long_url, "description": evil})
    assert post(source["ingestUrl"], ('{"html": %s, "blob": "%s"}' % (json.dumps(evil), "y" * 10_000)).encode())[0] == 200
    for name, viewport in [("desktop", DESKTOP), ("phone", PHONE)]:
        context, page, errors = open_page(browser, viewport)
        try:
            sign_in(page, base_url, admin_token)
            for path, label in [("/ui/ingest", "list"), (f"/ui/ingest/{source['id']}", "source")]:
                page.goto(base_url + path)
                expect(page.locator(".view h1")).to_be_visible()
                expect(page.get_by_text(evil).first).to_be_visible()
                if label == "source":
                    page.locator("summary").first.click()
                    expect(page.locator("pre.code").first).to_contain_text("yyyy")
                assert page.locator(".view img, .view script").count() == 0
                assert page.title() != "pwned" and page.title().endswith(" · hookd"), page.title()
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], f"{path}: {width}px wide at {viewport['width']}px"
                screens.shot(page, f"layout-ingest-{label}-{name}")
        finally:
            context.close()
        assert not errors, "\n".join(errors)


def test_an_ingest_source_and_its_endpoint_can_be_edited(page, base_url, admin_token, api, receiver, screens):
    source = api.ok(
        "POST",
        "/ingest/api/v1/source",
        {"name": f"Editable {uuid.uuid4().hex[:6]}", "type": "hookd-bearer", "config": {"token": "first-token"}},
    )
    path = f"/ingest/api/v1/source/{source['id']}"
    endpoint = api.ok("POST", f"{path}/endpoint", {"url": receiver.url("/ok/before"), "description": "before"})
    sign_in(page, base_url, admin_token)
    page.goto(f"{base_url}/ui/ingest/{source['id']}")

    # The source: a new name, and the secret given again (it is not shown back).
    form = page.locator("form").filter(has=page.get_by_role("heading", name="Edit source"))
    expect(form).to_contain_text("give the secret again")
    renamed = f"Edited {uuid.uuid4().hex[:6]}"
    form.get_by_label("Name").fill(renamed)
    form.get_by_label("Config (JSON)").fill('{"token": "second-token"}')
    form.get_by_role("button", name="Save source").click()
    expect(page.get_by_role("heading", name=renamed, level=1)).to_be_visible()
    saved = api.ok("GET", path)
    assert saved["name"] == renamed and saved["type"] == "hookd-bearer", saved
    # The new token is the one the source checks.
    assert post(saved["ingestUrl"], b'{"type": "t"}', token="second-token")[0] == 200
    assert post(saved["ingestUrl"], b'{"type": "t"}', token="first-token")[0] == 401

    # The endpoint: a new URL and description, and disabled.
    row = page.get_by_role("row").filter(has_text=endpoint["url"])
    row.get_by_role("button", name="Edit").click()
    form = page.locator("form").filter(has=page.get_by_role("heading", name="Edit endpoint"))
    target = receiver.url("/ok/after")
    form.get_by_label("URL", exact=True).fill(target)
    form.get_by_label("Description").fill("after")
    form.get_by_label("Disabled").check()
    screens.shot(page, "ingest-endpoint-edit")
    form.get_by_role("button", name="Save endpoint").click()
    row = page.get_by_role("row").filter(has_text=target)
    expect(row).to_contain_text("after")
    expect(row).to_contain_text("disabled")
    saved = api.ok("GET", f"{path}/endpoint/{endpoint['id']}")
    assert saved["url"] == target and saved["description"] == "after" and saved["disabled"] is True, saved
    screens.shot(page, "ingest-source-edited")
