"""`event_type.import_openapi` through the SDK: event types from an OpenAPI document's
webhooks, with dry run, and their schemas used for payload validation. `validatePayloads`
is hookd's field, which the SDK's models do not have: that one request is made with httpx."""

import os

import httpx
import pytest
from svix.api import ApplicationIn, EventTypeImportOpenApiIn, MessageIn
from svix.exceptions import HTTPValidationError


def spec(run_id):
    return {
        "openapi": "3.1.0",
        "info": {"title": "SDK import", "version": "1"},
        "webhooks": {
            f"sdk.import.{run_id}": {
                "post": {
                    "description": "Imported through the SDK",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Thing"}
                            }
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "Thing": {
                    "type": "object",
                    "properties": {"n": {"type": "integer"}},
                    "required": ["n"],
                }
            }
        },
    }


def test_import_openapi_creates_event_types_whose_schemas_validate(client, run_id):
    name = f"sdk.import.{run_id}"
    dry = client.event_type.import_openapi(
        EventTypeImportOpenApiIn(spec=spec(run_id), dry_run=True)
    )
    assert dry.data.modified == [name]
    assert dry.data.to_modify[0].description == "Imported through the SDK"

    out = client.event_type.import_openapi(EventTypeImportOpenApiIn(spec=spec(run_id)))
    assert out.data.modified == [name]
    et = client.event_type.get(name)
    assert et.schemas["1"]["properties"]["n"] == {"type": "integer"}
    again = client.event_type.import_openapi(EventTypeImportOpenApiIn(spec=spec(run_id)))
    assert again.data.modified == []

    response = httpx.patch(
        f"{os.environ['HOOKD_URL']}/api/v1/event-type/{name}",
        headers={"Authorization": f"Bearer {os.environ['HOOKD_TOKEN']}"},
        json={"validatePayloads": True},
    )
    assert response.status_code == 200, response.text
    app = client.application.create(ApplicationIn(name=f"SDK import {run_id}"))
    client.message.create(app.id, MessageIn(event_type=name, payload={"n": 1}))
    with pytest.raises(HTTPValidationError) as refused:
        client.message.create(app.id, MessageIn(event_type=name, payload={"n": "one"}))
    assert refused.value.detail[0].loc == ["body", "payload", "n"]
