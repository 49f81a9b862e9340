"""Crash recovery: a message hookd accepted (202) is delivered even if hookd is killed
with SIGKILL while deliveries are in flight, once it is restarted on the same data dir.

The test fails if a message that got 202 is never delivered, if a delivery that was still
waiting for its answer at the kill (so hookd never saw it succeed) is not sent again
after the restart, or if an accepted message cannot be read back through the API.
Delivery is at-least-once, so other duplicates are allowed: they are counted and
printed, not failed.

This test starts hookd processes of its own (HOOKD_BIN), independent of HOOKD_URL.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import standardwebhooks
from svix.api import ApplicationIn, EndpointIn, MessageGetOptions, Svix, SvixOptions

from receiver import Receiver, wait_for

MESSAGES = 1000
SENDER_THREADS = 4
# Delivery is made much slower than message creation, so that a backlog of accepted but
# undelivered messages builds up: hookd keeps at most DELIVERY_CONCURRENCY attempts in
# flight, and until the kill the receiver holds each one DELAY_BEFORE_KILL seconds before
# answering 200 (about 64 deliveries/s). After the kill it answers at once, so the
# restarted hookd catches up fast.
DELIVERY_CONCURRENCY = 16
DELAY_BEFORE_KILL = 0.25
DELAY_AFTER_KILL = 0.01
# SIGKILL once this many distinct messages have arrived: by then many more have been
# accepted, and deliveries are well under way but far from finished.
KILL_AFTER_RECEIVED = 150
# Deliveries claimed by the killed process are retried when their lease runs out:
# max_request_timeout_secs plus a fixed 30 s margin in hookd. A short request timeout keeps
# that wait (and so this test) around half a minute.
REQUEST_TIMEOUT_SECS = 2
RECOVERY_TIMEOUT = 60.0
EVENT_TYPE = "sdk.crash.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HookdProcess:
    """A `hookd serve` owned by the test. Each start() picks a new port; the data dir
    stays, so a restart sees everything the previous process committed."""

    def __init__(
        self, binary: str, data_dir: Path, log_path: Path, token: str, env: dict[str, str]
    ):
        self.binary = binary
        self.token = token
        self.data_dir = data_dir
        self.log_path = log_path
        self.env = {**env, "HOOKD_ADMIN_TOKEN": token}
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "hookd is already running"
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}",
                 "--data-dir", str(self.data_dir)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self.proc.poll() is not None:
                pytest.fail(f"hookd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"hookd not healthy after {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=1) as r:
                return 200 <= r.status < 300
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut of the process."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def hookd(hookd_bin, tmp_path):
    token = "hk_crash_" + secrets.token_urlsafe(24)
    # On PostgreSQL (HOOKD_SDK_BACKEND=postgres in run.sh), a database of this test's own.
    database_url = os.environ.get("HOOKD_SDK_CRASH_DATABASE_URL", "")
    # hookd refuses unknown HOOKD_* variables, and those of the outer run are not for it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
    if database_url:
        env["HOOKD_DATABASE_URL"] = database_url
    env.update(
        HOOKD_ALLOWED_NETWORKS="127.0.0.0/8",
        HOOKD_RETRY_SCHEDULE="1,1,1,1,1",
        HOOKD_REQUEST_TIMEOUT_SECS=str(REQUEST_TIMEOUT_SECS),
        HOOKD_MAX_REQUEST_TIMEOUT_SECS=str(REQUEST_TIMEOUT_SECS),
        HOOKD_DELIVERY_CONCURRENCY=str(DELIVERY_CONCURRENCY),
    )
    process = HookdProcess(hookd_bin, tmp_path / "data", tmp_path / "hookd.log", token, env)
    yield process
    process.stop()
    print(f"hookd log: {process.log_path}")


@pytest.fixture
def slow_receiver():
    r = Receiver(delay=DELAY_BEFORE_KILL).start()
    yield r
    r.stop()


def report(capsys, line: str) -> None:
    """Prints to the terminal even when pytest captures output (it does by default)."""
    with capsys.disabled():
        print(f"\n[crash recovery] {line}")


def sdk_client(hookd: HookdProcess) -> Svix:
    return Svix(hookd.token, SvixOptions(server_url=hookd.url, retry_schedule=[], timeout=10.0))


@dataclass
class Flood:
    """Sends messages from several threads and sorts out what hookd answered."""

    url: str
    token: str
    app_id: str
    accepted: dict[str, dict] = field(default_factory=dict)  # msg id -> payload
    refused: list[tuple[int, int]] = field(default_factory=list)  # (seq, status)
    # Requests that got no answer: (seq, whether hookd had already been killed).
    unanswered: list[tuple[int, bool]] = field(default_factory=list)
    killed: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, payload: dict) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.url}/api/v1/app/{self.app_id}/msg",
            data=json.dumps({"eventType": EVENT_TYPE, "payload": payload}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, {}

    def send_all(self, worker: int, seqs: range) -> None:
        for seq in seqs:
            payload = {"seq": seq, "worker": worker, "note": "crash recovery"}
            try:
                status, body = self.post(payload)
            except OSError:  # connection refused or reset, timeout, ...
                with self.lock:
                    self.unanswered.append((seq, self.killed.is_set()))
                return  # hookd is gone; so is this sender
            with self.lock:
                if status == 202:
                    self.accepted[body["id"]] = payload
                else:
                    self.refused.append((seq, status))

    def start(self, messages: int, threads: int) -> list[threading.Thread]:
        workers = [
            threading.Thread(
                target=self.send_all, args=(w, range(w, messages, threads)), daemon=True
            )
            for w in range(threads)
        ]
        for t in workers:
            t.start()
        return workers

    def snapshot(self) -> set[str]:
        with self.lock:
            return set(self.accepted)


def test_accepted_messages_survive_sigkill(hookd, slow_receiver, capsys):
    hookd.start()
    client = sdk_client(hookd)
    app = client.application.create(ApplicationIn(name="crash recovery"))
    endpoint = client.endpoint.create(app.id, EndpointIn(url=slow_receiver.url("/crash")))
    secret = client.endpoint.get_secret(app.id, endpoint.id).key

    # Flood hookd, and kill it once deliveries are well under way.
    flood = Flood(hookd.url, hookd.token, app.id)
    senders = flood.start(MESSAGES, SENDER_THREADS)
    wait_for(
        lambda: len(slow_receiver.ids_received()) >= KILL_AFTER_RECEIVED,
        30,
        lambda: f"only {len(slow_receiver.ids_received())} messages delivered before the kill",
    )
    flood.killed.set()
    hookd.kill()
    dead_at = time.time()
    slow_receiver.delay = DELAY_AFTER_KILL
    for t in senders:
        t.join(timeout=15)
    assert not any(t.is_alive() for t in senders), "a sender is stuck"

    assert not flood.refused, f"hookd refused messages: {flood.refused[:10]}"
    assert all(killed for _, killed in flood.unanswered), (
        f"requests went unanswered before hookd was killed: {flood.unanswered}"
    )
    accepted = flood.snapshot()
    before_restart = slow_receiver.deliveries()
    delivered_before_restart = {d.msg_id for d in before_restart}
    # A delivery that arrived less than DELAY_BEFORE_KILL before hookd was dead was
    # answered only after that: hookd never saw it succeed, so it must send it again.
    unacknowledged = {
        d.msg_id for d in before_restart if d.received_at > dead_at - DELAY_BEFORE_KILL
    } & accepted
    report(
        capsys,
        f"at the kill: {len(accepted)} messages accepted, {len(flood.unanswered)} requests "
        f"cut off, {len(delivered_before_restart & accepted)} accepted messages delivered "
        f"({len(unacknowledged)} of them not yet acknowledged)",
    )
    # Otherwise there would be nothing left to recover, and the test would prove little.
    assert accepted - delivered_before_restart, "every message was delivered before the kill"
    assert unacknowledged, "no delivery was in flight at the kill"

    # Restart on the same data dir. Every accepted message must arrive, and those whose
    # delivery was cut off must arrive again.
    restarted_at = time.time()
    hookd.start()

    def outstanding() -> set[str]:
        after_restart = {
            d.msg_id for d in slow_receiver.deliveries() if d.received_at >= restarted_at
        }
        never_delivered = accepted - delivered_before_restart - after_restart
        return never_delivered | (unacknowledged - after_restart)

    wait_for(
        lambda: not outstanding(),
        RECOVERY_TIMEOUT,
        lambda: f"{len(outstanding())} accepted messages not delivered after the restart, "
        f"e.g. {sorted(outstanding())[:5]}",
        interval=0.2,
    )
    received = slow_receiver.ids_received()
    duplicates = sum(n - 1 for n in received.values())
    unconfirmed = set(received) - accepted
    report(
        capsys,
        f"recovered {time.time() - restarted_at:.1f}s after the restart: all "
        f"{len(accepted)} accepted messages delivered, {duplicates} duplicate deliveries, "
        f"{len(unconfirmed)} delivered messages whose 202 was lost in the kill",
    )

    # Whatever arrived, before or after the crash, is authentic and intact, and is either
    # an accepted message or one whose request was cut off by the kill.
    verifier = standardwebhooks.Webhook(secret)
    cut_off = {seq for seq, _ in flood.unanswered}
    for d in slow_receiver.deliveries():
        payload = verifier.verify(d.body, d.header_family("webhook"))
        if d.msg_id in flood.accepted:
            assert payload == flood.accepted[d.msg_id]
        else:
            assert payload["seq"] in cut_off, f"{d.msg_id} was never sent: {payload}"

    # The restarted hookd still has every accepted message, content included.
    client = sdk_client(hookd)
    for msg_id, payload in flood.accepted.items():
        msg = client.message.get(app.id, msg_id, MessageGetOptions(with_content=True))
        assert msg.id == msg_id and msg.payload == payload
