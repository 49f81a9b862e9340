"""Shared fixtures for the Svix-SDK compatibility tests.

The tests talk to an already running hookd server:

    HOOKD_URL=http://127.0.0.1:8071 HOOKD_TOKEN=... pytest tests/sdk

Both variables are mandatory; the tests fail (not skip) without them. Tests that start
hookd processes of their own also need HOOKD_BIN, the path of the hookd binary. run.sh
sets all three.
"""

import os
import uuid

import pytest
from svix.api import (
    ApplicationIn,
    EventTypeDeleteOptions,
    EventTypeIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError

from receiver import Receiver


def _require_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"environment variable {name} must be set to run the SDK tests")
    return value


@pytest.fixture(scope="session")
def client() -> Svix:
    url = _require_env("HOOKD_URL")
    token = _require_env("HOOKD_TOKEN")
    # No client-side retries: a 5xx from hookd should fail the test immediately
    # instead of being hidden by the SDK's default retry schedule.
    return Svix(token, SvixOptions(server_url=url, retry_schedule=[], timeout=10.0))


@pytest.fixture(scope="session")
def hookd_bin() -> str:
    path = _require_env("HOOKD_BIN")
    if not os.access(path, os.X_OK):
        pytest.fail(f"HOOKD_BIN={path} is not an executable file")
    return path


@pytest.fixture
def receiver():
    """A local webhook receiver (see receiver.py), stopped when the test ends."""
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def run_id() -> str:
    """Short unique suffix so the suite can be rerun against the same server."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def make_app(client):
    """Create an application; it is deleted again when the test ends."""
    created = []

    def _make(name: str, uid: str | None = None, **kwargs):
        app = client.application.create(ApplicationIn(name=name, uid=uid, **kwargs))
        created.append(app.id)
        return app

    yield _make

    for app_id in created:
        try:
            client.application.delete(app_id)
        except HttpError:
            pass


@pytest.fixture
def make_event_type(client):
    """Create an event type; it is expunged again when the test ends."""
    created = []

    def _make(name: str, description: str = "created by the SDK tests", **kwargs):
        et = client.event_type.create(
            EventTypeIn(name=name, description=description, **kwargs)
        )
        created.append(name)
        return et

    yield _make

    for name in created:
        try:
            client.event_type.delete(name, EventTypeDeleteOptions(expunge=True))
        except HttpError:
            pass
