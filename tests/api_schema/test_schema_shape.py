"""The schema's own promises: hand-chosen ids and tags, envelopes, camelCase paths,
problem details with their codes, links that resolve, examples that validate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml
from django.test import Client
from openapi_schema_validator import OAS30Validator

from tests.api_schema.conftest import ROOT, spelled_out

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
# Routes outside JSON, each documented for what it is.
NOT_JSON = {
    "openMediaSocket",
    "downloadRecordingAudio",
    "twilioFetchCall",
    "twilioUpdateCall",
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    response = Client().get("/api/v1/schema")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, item[method])
        for path, item in schema["paths"].items()
        for method in METHODS
        if method in item
    ]


def validator(schema: dict[str, Any], component: str) -> OAS30Validator:
    """A validator of one component, its references resolved in the whole schema."""
    return OAS30Validator(
        {
            "components": spelled_out(schema["components"]),
            "$ref": f"#/components/schemas/{component}",
        }
    )


def test_the_schema_generates_without_a_single_warning() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--fail-on-warn", "--validate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_operation_has_a_hand_chosen_id_and_a_tag(schema: dict[str, Any]) -> None:
    tags = {tag["name"] for tag in schema["tags"]}
    ids = [operation["operationId"] for _, _, operation in operations(schema)]
    assert len(ids) == len(set(ids))
    for path, method, operation in operations(schema):
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)+", operation["operationId"]), (
            path,
            method,
            operation["operationId"],
        )
        assert len(operation["tags"]) == 1 and operation["tags"][0] in tags, (
            path,
            method,
        )
    assert {"createSession", "placeCall", "endCall", "listEvents", "sendDtmf"} <= set(
        ids
    )


def test_path_parameters_are_camel_case_uuids(schema: dict[str, Any]) -> None:
    for path, _, operation in operations(schema):
        assert "_" not in "".join(re.findall(r"{(\w+)}", path)), path
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"].endswith("Id"):
                assert parameter["schema"] == {"type": "string", "format": "uuid"}
    assert "/api/v1/sessions/{sessionId}/calls/{callId}/end" in schema["paths"]


def test_json_successes_are_envelopes_or_pages(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    for path, method, operation in operations(schema):
        if operation["operationId"] in NOT_JSON:
            continue
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                continue
            ref = response["content"]["application/json"]["schema"]["$ref"]
            name = ref.rpartition("/")[2]
            body = components[name]
            assert set(body["required"]) == set(body["properties"]), name
            if name.endswith("Page"):
                assert set(body["properties"]) == {"data", "nextCursor"}, name
                assert body["properties"]["data"]["type"] == "array"
                assert body["properties"]["nextCursor"]["nullable"] is True
            else:
                assert name.endswith("Envelope"), (path, method, name)
                assert set(body["properties"]) == {"data"}, name


def test_request_bodies_are_json_but_the_upload(schema: dict[str, Any]) -> None:
    for _, _, operation in operations(schema):
        content = set(operation.get("requestBody", {}).get("content", {}))
        if operation["operationId"] == "uploadAsset":
            assert content == {"multipart/form-data"}
        elif operation["operationId"] == "twilioUpdateCall":
            assert content == {"application/x-www-form-urlencoded"}
        elif content:
            assert content == {"application/json"}, operation["operationId"]


def test_every_error_is_problem_details_listing_its_codes(
    schema: dict[str, Any],
) -> None:
    for _, _, operation in operations(schema):
        if operation["operationId"] in {
            "openMediaSocket",
            "twilioFetchCall",
            "twilioUpdateCall",
        }:
            continue
        responses = operation["responses"]
        for status in ("401", "404", "429", "500"):
            assert status in responses, (operation["operationId"], status)
        for status, response in responses.items():
            if status.startswith(("2", "3")):
                continue
            media = response["content"]["application/problem+json"]
            assert media["schema"] == {"$ref": "#/components/schemas/Problem"}
            codes = {example["value"]["code"] for example in media["examples"].values()}
            assert codes, (operation["operationId"], status)
            for code in codes:
                assert f"`{code}`" in response["description"]
            assert "X-Request-Id" in response["headers"]


def test_problem_examples_are_real_problem_bodies(schema: dict[str, Any]) -> None:
    problem = validator(schema, "Problem")
    for _, _, operation in operations(schema):
        for response in operation["responses"].values():
            media = response.get("content", {}).get("application/problem+json", {})
            for example in media.get("examples", {}).values():
                problem.validate(example["value"])
                assert example["value"]["type"].endswith(
                    example["value"]["code"].replace("_", "-")
                )


def test_the_codes_of_a_placed_call_are_documented(schema: dict[str, Any]) -> None:
    place = schema["paths"]["/api/v1/sessions/{sessionId}/calls"]["post"]["responses"]
    assert "`session_not_ready`" in place["409"]["description"]
    assert "`idempotency_key_reused`" in place["409"]["description"]
    assert "`session_not_found`" in place["404"]["description"]
    assert "`malformed_request`" in place["400"]["description"]


def test_links_chain_created_ids_into_operations_that_exist(
    schema: dict[str, Any],
) -> None:
    by_id = {
        operation["operationId"]: operation for _, _, operation in operations(schema)
    }
    linked: dict[str, set[str]] = {}
    for _, _, operation in operations(schema):
        for response in operation["responses"].values():
            for name, link in response.get("links", {}).items():
                target = by_id[link["operationId"]]
                parameters = {
                    p["name"] for p in target.get("parameters", []) if p["in"] == "path"
                }
                assert set(link["parameters"]) == parameters, name
                for expression in link["parameters"].values():
                    assert expression.startswith("$response.body#/data/")
                linked.setdefault(operation["operationId"], set()).add(name)
    assert {"getSession", "connectSession", "placeCall"} <= linked["createSession"]
    assert {"getCall", "endCall", "muteCall", "createStream"} <= linked["placeCall"]
    assert {"getStream", "stopStream"} <= linked["createStream"]
    assert {"getWebhook", "rotateWebhookSecret"} <= linked["createWebhook"]
    assert {"getAsset", "deleteAsset"} <= linked["uploadAsset"]
    # What no request creates is linked from its list's first item.
    assert {"getRecording", "downloadRecordingAudio"} <= linked["listRecordings"]
    assert {"getWebhookDelivery", "retryWebhookDelivery"} <= linked[
        "listWebhookDeliveries"
    ]
    create = schema["paths"]["/api/v1/sessions"]["post"]["responses"]["201"]
    assert create["links"]["placeCall"]["parameters"] == {
        "sessionId": "$response.body#/data/sessionId"
    }


def test_component_examples_are_valid_bodies(schema: dict[str, Any]) -> None:
    shown = [
        (name, component)
        for name, component in schema["components"]["schemas"].items()
        if "example" in component
    ]
    assert {"Session", "CallEnvelope", "StreamPage", "Event", "TwilioCall"} <= {
        name for name, _ in shown
    }
    for name, component in shown:
        validator(schema, name).validate(component["example"])


def test_routes_outside_drf_are_documented(schema: dict[str, Any]) -> None:
    media = schema["paths"]["/api/v1/sessions/{sessionId}/calls/{callId}/media"]["get"]
    assert media["operationId"] == "openMediaSocket"
    assert "101" in media["responses"] and "`ready`" in media["description"]
    events = schema["paths"]["/api/v1/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    twilio = schema["paths"][
        "/twilio/2010-04-01/Accounts/{accountSid}/Calls/{callSid}.json"
    ]
    assert twilio["post"]["security"] == [{"TwilioBasic": []}]
    assert twilio["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]["schema"]["properties"]["Status"]["enum"] == ["completed", "canceled"]


def test_wavix_names_of_stream_options_are_documented(schema: dict[str, Any]) -> None:
    create = schema["paths"]["/api/v1/sessions/{sessionId}/calls/{callId}/streams"][
        "post"
    ]
    for name in ("stream_url", "stream_type", "stream_channel"):
        assert f"`{name}`" in create["description"]
    examples = create["responses"]["400"]["content"]["application/problem+json"][
        "examples"
    ]
    assert any(e["value"].get("param") == "stream_url" for e in examples.values())


def test_idempotency_key_is_documented_only_where_honoured(
    schema: dict[str, Any],
) -> None:
    honoured = {
        operation["operationId"]
        for _, _, operation in operations(schema)
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    }
    assert {"createSession", "placeCall", "createStream", "uploadAsset"} <= honoured
    assert not {"endCall", "muteCall", "connectSession"} & honoured
