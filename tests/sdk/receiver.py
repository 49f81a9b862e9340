"""A local webhook receiver for the delivery tests, and a small polling helper.

`Receiver` is an HTTP server on 127.0.0.1 (random port) running in a background thread.
It records every request it gets (method, path, headers, raw body) and answers with a
status scripted per path, 200 once the script is used up. hookd only delivers to loopback
addresses when started with HOOKD_ALLOWED_NETWORKS=127.0.0.0/8, as run.sh does.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, TypeVar

import pytest

T = TypeVar("T")


@dataclass(frozen=True)
class Delivery:
    """One request as the receiver saw it. Header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.time()

    @property
    def msg_id(self) -> str | None:
        return self.headers.get("webhook-id")

    def header_family(self, prefix: str) -> dict[str, str]:
        """Only the `{prefix}-*` headers, e.g. prefix="svix" for svix-id/-timestamp/-signature."""
        return {k: v for k, v in self.headers.items() if k.startswith(prefix + "-")}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A sender that goes away mid-request (hookd killed on purpose) is expected here;
        # anything else is still reported.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Receiver:
    def __init__(self, delay: float = 0.0):
        """`delay`: seconds every request is held before it is answered."""
        self.delay = delay
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._scripts: dict[str, deque[int]] = {}

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 so hookd can keep connections open between deliveries.
            protocol_version = "HTTP/1.1"
            # A kept-alive connection that goes quiet is dropped after this many seconds.
            timeout = 30

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status = receiver._record(
                    Delivery(
                        method=self.command,
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        received_at=time.time(),
                    )
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = b"ok" if 200 <= status < 300 else b"scripted failure"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_PUT = do_PATCH = do_GET = do_DELETE = _handle

            def log_message(self, format, *args):  # keep pytest output quiet
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        assert path.startswith("/")
        return self.base_url + path

    def script(self, path: str, *statuses: int) -> None:
        """Answer the next requests to `path` with `statuses`, in order; then 200 again."""
        with self._lock:
            self._scripts[path] = deque(statuses)

    def _record(self, delivery: Delivery) -> int:
        with self._lock:
            self._deliveries.append(delivery)
            script = self._scripts.get(delivery.path)
            return script.popleft() if script else 200

    def deliveries(self, path: str | None = None) -> list[Delivery]:
        """What arrived so far (to `path`, if given), in order of arrival."""
        with self._lock:
            return [d for d in self._deliveries if path is None or d.path == path]

    def ids_received(self) -> Counter[str]:
        """How many times each webhook-id arrived, over all paths."""
        with self._lock:
            return Counter(d.msg_id for d in self._deliveries if d.msg_id)


def wait_for(
    check: Callable[[], T],
    timeout: float,
    describe: Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Polls `check` until it returns something truthy, and returns that; fails the test
    with `describe()` if `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up after {timeout:g}s: {describe()}")
        time.sleep(interval)
