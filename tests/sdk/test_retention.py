"""Payload retention fields, the expunge routes and background tasks, through the SDK."""

import time

import pytest
from svix.api import (
    BackgroundTaskListOptions,
    BackgroundTaskStatus,
    BackgroundTaskType,
    BulkExpungeContentsIn,
    BulkExpungeStatus,
    MessageGetOptions,
    MessageIn,
)
from svix.exceptions import HttpError


def payload(client, app_id, msg_id):
    return client.message.get(app_id, msg_id, MessageGetOptions(with_content=True)).payload


def test_retention_fields_expunge_routes_and_background_tasks(client, run_id, make_app):
    app = make_app(f"SDK retention {run_id}", f"sdk-ret-app-{run_id}")
    msgs = [
        client.message.create(
            app.id,
            MessageIn(
                event_type="sdk.retention",
                payload={"i": i},
                event_id=f"ret-{run_id}-{i}",
                payload_retention_hours=24 if i == 0 else None,
                payload_retention_period=30 if i == 1 else None,
            ),
        )
        for i in range(3)
    ]

    # Both retention fields at once are refused, naming the field.
    with pytest.raises(Exception) as exc:
        client.message.create(
            app.id,
            MessageIn(
                event_type="sdk.retention",
                payload={},
                payload_retention_hours=1,
                payload_retention_period=1,
            ),
        )
    assert getattr(exc.value, "status_code", None) == 422, exc.value

    out = client.message.bulk_expunge_content(
        app.id,
        BulkExpungeContentsIn(ids=[msgs[0].id, f"ret-{run_id}-1", f"missing-{run_id}"]),
    )
    assert out.results == {
        msgs[0].id: BulkExpungeStatus.EXPUNGED,
        f"ret-{run_id}-1": BulkExpungeStatus.EXPUNGED,
        f"missing-{run_id}": BulkExpungeStatus.NOT_FOUND,
    }
    assert payload(client, app.id, msgs[0].id) == {"expired": True}
    assert payload(client, app.id, msgs[1].id) == {"expired": True}
    assert payload(client, app.id, msgs[2].id) == {"i": 2}

    started = client.message.expunge_all_contents(app.id)
    assert started.id.startswith("qtask_")
    assert started.task == BackgroundTaskType.APPLICATION_PURGE_CONTENT
    deadline = time.monotonic() + 20
    while True:
        task = client.background_task.get(started.id)
        if task.status != BackgroundTaskStatus.RUNNING:
            break
        assert time.monotonic() < deadline, "the purge task did not finish"
        time.sleep(0.05)
    assert task.status == BackgroundTaskStatus.FINISHED
    assert task.data == {"messagesPurged": 1}
    assert payload(client, app.id, msgs[2].id) == {"expired": True}

    finished = client.background_task.list(
        BackgroundTaskListOptions(
            status=BackgroundTaskStatus.FINISHED,
            task=BackgroundTaskType.APPLICATION_PURGE_CONTENT,
            limit=250,
        )
    )
    assert started.id in [t.id for t in finished.data]
    # A task type hookd never runs: none.
    never = client.background_task.list(
        BackgroundTaskListOptions(task=BackgroundTaskType.SDK_GENERATE)
    )
    assert never.data == []

    with pytest.raises(HttpError) as missing:
        client.background_task.get("qtask_01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing.value.status_code == 404
