"""Replays, replay-missing and recover as background tasks, through the SDK: the SDK's own
methods and models (BulkReplayIn, ReplayIn, RecoverIn, ReplayOut, RecoverOut,
BackgroundTaskOut) against hookd, and the objects decode."""

import time
from datetime import datetime, timedelta, timezone

from svix.api import (
    BackgroundTaskListOptions,
    BackgroundTaskStatus,
    BackgroundTaskType,
    BulkReplayIn,
    EndpointIn,
    MessageIn,
    RecoverIn,
    ReplayIn,
)

from receiver import wait_for


def finished(client, task_id):
    deadline = time.monotonic() + 20
    while True:
        task = client.background_task.get(task_id)
        if task.status != BackgroundTaskStatus.RUNNING:
            return task
        assert time.monotonic() < deadline, f"task {task_id} did not finish"
        time.sleep(0.05)


def arrived(receiver, path, count):
    return wait_for(
        lambda: len(receiver.deliveries(path)) >= count and receiver.deliveries(path),
        20,
        lambda: f"{path} got {len(receiver.deliveries(path))} of {count} requests",
    )


def test_bulk_replay_replay_missing_and_recover(client, run_id, make_app, receiver):
    app = make_app(f"SDK replays {run_id}", f"sdk-replay-app-{run_id}")
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    first = client.endpoint.create(app.id, EndpointIn(url=receiver.url("/first")))
    msgs = [
        client.message.create(app.id, MessageIn(event_type=t, payload={"i": i}))
        for i, t in enumerate(["sdk.replay.a", "sdk.replay.b"])
    ]
    arrived(receiver, "/first", 2)

    replay = client.endpoint.bulk_replay(
        app.id,
        first.id,
        BulkReplayIn(since=since, event_types=["sdk.replay.a"]),
    )
    assert replay.id.startswith("qtask_")
    assert replay.task == BackgroundTaskType.ENDPOINT_BULK_REPLAY
    done = finished(client, replay.id)
    assert done.status == BackgroundTaskStatus.FINISHED
    assert done.task == BackgroundTaskType.ENDPOINT_BULK_REPLAY
    assert done.data == {"messagesSent": 1}
    again = arrived(receiver, "/first", 3)[2]
    assert again.msg_id == msgs[0].id

    late = client.endpoint.create(app.id, EndpointIn(url=receiver.url("/late")))
    missing = client.endpoint.replay_missing(app.id, late.id, ReplayIn(since=since))
    assert missing.task == BackgroundTaskType.ENDPOINT_REPLAY
    assert finished(client, missing.id).data == {"messagesSent": 2}
    got = arrived(receiver, "/late", 2)
    assert sorted(d.msg_id for d in got) == sorted(m.id for m in msgs)

    # A delivery that fails for good (run.sh: three retries), then recovers.
    flaky = client.endpoint.create(app.id, EndpointIn(url=receiver.url("/flaky")))
    receiver.script("/flaky", 500, 500, 500, 500)
    failing = client.message.create(
        app.id, MessageIn(event_type="sdk.replay.a", payload={"i": 2})
    )
    arrived(receiver, "/flaky", 4)
    wait_for(
        lambda: client.endpoint.get_stats(app.id, flaky.id).fail == 1,
        20,
        lambda: f"the delivery to fail: {client.endpoint.get_stats(app.id, flaky.id)}",
    )
    recovered = client.endpoint.recover(app.id, flaky.id, RecoverIn(since=since))
    assert recovered.id.startswith("qtask_")
    assert recovered.task == BackgroundTaskType.ENDPOINT_RECOVER
    assert finished(client, recovered.id).data == {"messagesSent": 1}
    assert arrived(receiver, "/flaky", 5)[4].msg_id == failing.id

    listed = client.background_task.list(
        BackgroundTaskListOptions(task=BackgroundTaskType.ENDPOINT_RECOVER, limit=250)
    )
    assert recovered.id in [t.id for t in listed.data]
    assert all(t.task == BackgroundTaskType.ENDPOINT_RECOVER for t in listed.data)
