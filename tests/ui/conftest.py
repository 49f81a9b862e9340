"""Shared fixtures of the admin UI's browser tests.

The tests drive a real headless Chromium (Debian's package, never a browser Playwright
downloads) against an already running hookd:

    HOOKD_URL=http://127.0.0.1:8071 HOOKD_TOKEN=... pytest tests/ui

run.sh starts hookd and sets the variables. Every page fixture fails its test on any
console error or uncaught exception in the page, and every test writes screenshots to
HOOKD_UI_SCREENSHOTS (target/ui-screenshots by default).
"""

import json
import os
import re
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _require_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"environment variable {name} must be set to run the UI tests")
    return value


@pytest.fixture(scope="session")
def base_url() -> str:
    return _require_env("HOOKD_URL").rstrip("/")


@pytest.fixture(scope="session")
def admin_token() -> str:
    return _require_env("HOOKD_TOKEN")


class Api:
    """hookd's JSON API, for setting up what the pages are then checked against."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.token = token

    def call(self, method: str, path: str, body=None, token=None):
        """`path` is under /api/v1, unless it is an ingest route (/ingest/api/v1/...)."""
        data = None if body is None else json.dumps(body).encode()
        url = self.base_url + (path if path.startswith("/ingest/") else f"/api/v1{path}")
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token or self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
                return response.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text else None)

    def ok(self, method: str, path: str, body=None):
        status, out = self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: {status} {out}"
        return out


@pytest.fixture(scope="session")
def api(base_url, admin_token) -> Api:
    return Api(base_url, admin_token)


class Receiver:
    """Webhook receiver on 127.0.0.1: answers 200 on /ok, 500 on /fail; keeps what came."""

    def __init__(self):
        self.requests = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                received.append((self.path, dict(self.headers), body))
                status = 500 if self.path.startswith("/fail") else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("X-Receiver", "ui-tests")
                self.end_headers()
                self.wfile.write(b"thanks" if status == 200 else b"broken on purpose")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def count(self, prefix: str) -> int:
        return sum(1 for path, _, _ in self.requests if path.startswith(prefix))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def browser():
    chromium = os.environ.get("HOOKD_UI_CHROMIUM", "/usr/bin/chromium")
    # Chromium's sandbox refuses to start as root (CI runs as root).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=args)
        yield b
        b.close()


class Screens:
    def __init__(self):
        self.dir = Path(os.environ.get("HOOKD_UI_SCREENSHOTS", "target/ui-screenshots"))
        self.dir.mkdir(parents=True, exist_ok=True)

    def shot(self, page, name: str, full_page: bool = True):
        page.screenshot(path=str(self.dir / f"{name}.png"), full_page=full_page)


@pytest.fixture(scope="session")
def screens() -> Screens:
    return Screens()


def open_page(browser, viewport=DESKTOP):
    """A page in a context of its own (its own session storage), and the list its console
    errors and uncaught exceptions are put in."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    # Destructive actions ask first; the tests say yes.
    page.on("dialog", lambda d: d.accept())
    return context, page, errors


def sign_in(page, base_url, token):
    """Signs in on the sign-in page with `token` (an admin's: it lands on the overview)."""
    page.goto(f"{base_url}/ui")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


REFUSED = re.compile(r"console error: Failed to load resource: the server responded with a status of (\d+)")


def unexpected(errors, refusals):
    """The console errors but Chromium's notes of API answers with a status in `refusals`
    (the ones a test provokes on purpose: a wrong token, bad input, a portal token sent to
    an admin page), which Chromium logs as errors."""
    left = []
    for e in errors:
        m = REFUSED.match(e)
        if not (m and int(m.group(1)) in refusals):
            left.append(e)
    return left


@pytest.fixture
def page(browser):
    """A desktop-sized page; the test fails on any console error in it. A test that provokes
    an API refusal on purpose sets `page.expected_refusals` to its statuses."""
    context, page, errors = open_page(browser)
    page.expected_refusals = set()
    yield page
    context.close()
    left = unexpected(errors, page.expected_refusals)
    assert not left, "browser console errors:\n" + "\n".join(left)
