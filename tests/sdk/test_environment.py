"""The environment export and import, through the Svix Python SDK's `environment` API."""

import pytest
from svix.api import EventTypeDeleteOptions, EventTypeIn
from svix.exceptions import HTTPValidationError
from svix.models import ConnectorIn, EnvironmentIn


def test_export_and_import(client, run_id, make_event_type):
    name = f"env.exported.{run_id}"
    make_event_type(name, description="to export", schemas={"1": {"type": "object"}})

    env = client.environment.export()
    assert env.version == 1
    assert env.connectors == []
    assert env.settings is None
    exported = {et.name: et for et in env.event_types}
    assert exported[name].description == "to export"
    assert exported[name].schemas == {"1": {"type": "object"}}

    imported = f"env.imported.{run_id}"
    try:
        client.environment.import_(
            EnvironmentIn(
                event_types=[
                    EventTypeIn(name=name, description="replaced"),
                    EventTypeIn(name=imported, description="new"),
                ],
                settings={},
                connectors=[],
            )
        )
        assert client.event_type.get(name).description == "replaced"
        assert client.event_type.get(imported).description == "new"
    finally:
        client.event_type.delete(imported, EventTypeDeleteOptions(expunge=True))


def test_import_refuses_connectors_and_settings(client, run_id):
    name = f"env.refused.{run_id}"
    connector = ConnectorIn(
        name="c", transformation="function handler(webhook) { return webhook }"
    )
    for body, field in [
        (EnvironmentIn(connectors=[connector]), "connectors"),
        (EnvironmentIn(settings={"colorPaletteDark": {}}), "settings"),
    ]:
        body.event_types = [EventTypeIn(name=name, description="never written")]
        with pytest.raises(HTTPValidationError) as exc:
            client.environment.import_(body)
        assert exc.value.detail[0].loc[-1] == field
    names = [et.name for et in client.environment.export().event_types]
    assert name not in names
