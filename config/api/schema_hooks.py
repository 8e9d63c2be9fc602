"""The OpenAPI postprocessing hooks: what every operation of the schema shares.

UUID path parameters; problem-details responses with the codes each operation can
carry (real bodies, made by the exception handler's own code), ``X-Request-Id`` and the
other headers; links from a returned resource to the operations that take its ids; and
the examples registered with ``config.api.schema.example``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Sequence
from typing import Any

from drf_spectacular.drainage import warn
from rest_framework import exceptions as drf

from config.api import idempotency, pagination
from config.api.auth import KEY_REFUSALS, key_refused
from config.api.errors import (
    ApplicationError,
    NotFound,
    internal_error,
    rate_limited,
)
from config.api.schema import (
    EXAMPLE_ID,
    EXAMPLES,
    PROBLEM,
    PROBLEM_REF,
    STATUS_TEXT,
    example_name,
    invalid,
    name_of,
    problem_example,
    rendered,
)

HEADER_REF = "#/components/headers/"
METHODS = ("get", "post", "put", "patch", "delete")

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details (`application/problem+json`).",
    "required": ["type", "title", "status", "detail", "code", "requestId"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable snake_case machine code."},
        "param": {"type": "string", "description": "The field at fault, when one is."},
        "requestId": {
            "type": "string",
            "description": "The `X-Request-Id` of the response.",
        },
        "errors": {
            "type": "array",
            "description": "Every field at fault (validation errors).",
            "items": {
                "type": "object",
                "required": ["param", "detail", "code"],
                "properties": {
                    "param": {"type": "string", "nullable": True},
                    "detail": {"type": "string"},
                    "code": {"type": "string"},
                },
            },
        },
    },
}

HEADERS: dict[str, Any] = {
    "XRequestId": {
        "description": "The request's id (the client's own `X-Request-Id`, if sane).",
        "required": True,
        "schema": {"type": "string"},
    },
    "RetryAfter": {
        "description": "Seconds to wait before trying again (with some codes).",
        "required": False,
        "schema": {"type": "integer", "minimum": 1},
    },
    "WWWAuthenticate": {
        "description": "The authentication scheme: `Bearer`.",
        "required": True,
        "schema": {"type": "string"},
    },
    "IdempotentReplayed": {
        "description": "`true` when this is the stored response of an earlier request "
        "with the same `Idempotency-Key`.",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    },
}


def operations(result: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) for every operation of a schema."""
    for path, item in result.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _path_parameters(operation: dict[str, Any]) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]


def _resource_of(parameter: str) -> str:
    """``webhookId`` → ``webhook``."""
    return re.sub(r"(?<!^)([A-Z])", r" \1", parameter.removesuffix("Id")).lower()


def describe_path_parameters(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Path parameters are named as the API names fields (the URL patterns say
    ``<str:sessionId>``); the ids among them are UUID strings."""
    for path, _method, operation in operations(result):
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "path":
                continue
            if "_" in parameter["name"]:
                warn(f"{path}: name the URL parameter {parameter['name']} in camelCase")
            if parameter["name"].endswith("Id"):
                parameter["schema"] = {"type": "string", "format": "uuid"}
                parameter["description"] = (
                    f"The {_resource_of(parameter['name'])}'s id."
                )
    return result


def _shared_responses() -> dict[str, dict[str, Any]]:
    """The failures every operation shares, whatever it does: by status."""
    unauthorized = [key_refused(code) for code in KEY_REFUSALS]
    return {
        "401": _problem_response(
            401,
            unauthorized,
            {"WWW-Authenticate": {"$ref": HEADER_REF + "WWWAuthenticate"}},
        ),
        "429": _problem_response(
            429,
            [rate_limited(12)],
            {
                "Retry-After": {
                    **HEADERS["RetryAfter"],
                    "description": "Seconds until the key's window has room.",
                    "required": True,
                }
            },
        ),
        "500": _problem_response(500, [internal_error()]),
    }


def _problem_response(
    status: int,
    errors: Sequence[ApplicationError],
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": STATUS_TEXT[status],
        "headers": {
            "X-Request-Id": {"$ref": HEADER_REF + "XRequestId"},
            **(headers or {}),
        },
        "content": {PROBLEM: {"schema": PROBLEM_REF, "examples": {}}},
    }
    _add_examples(response, errors)
    _describe(status, response)
    return response


def _describe(status: int, response: dict[str, Any]) -> None:
    """Say which codes a problem response carries, in its description."""
    codes = _codes(response)
    if codes:
        text = STATUS_TEXT.get(status, response.get("description", ""))
        listed = ", ".join(f"`{code}`" for code in codes)
        response["description"] = f"{text}. `code`: {listed}."


def _add_examples(response: dict[str, Any], errors: Sequence[ApplicationError]) -> None:
    content = response["content"][PROBLEM]
    # Named like the hook's own, whoever declared them (spectacular renames examples).
    examples = {
        name_of(example["value"]): {"value": example["value"]}
        for example in content.get("examples", {}).values()
    }
    for error in errors:
        examples.setdefault(example_name(error), {"value": problem_example(error)})
    content["examples"] = examples


def _codes(response: dict[str, Any]) -> list[str]:
    examples = response.get("content", {}).get(PROBLEM, {}).get("examples", {})
    return list(dict.fromkeys(e["value"]["code"] for e in examples.values()))


# DRF's message for a value of the wrong type, by the JSON type the schema asks for.
_WRONG_TYPE = {
    "boolean": "Must be a valid boolean.",
    "integer": "A valid integer is required.",
    "array": 'Expected a list of items but got type "str".',
    "object": 'Expected a dictionary of items but got type "str".',
}


def _body_error(result: dict[str, Any], operation: dict[str, Any]) -> ApplicationError:
    """A real validation error of an operation's JSON body: its first required field
    left out, or else its first field given a value of the wrong type."""
    body = next(iter(operation["requestBody"]["content"].values()))
    ref = body.get("schema", {}).get("$ref", "")
    component = result["components"]["schemas"].get(ref.rpartition("/")[2], {})
    properties = component.get("properties", {})
    required = component.get("required", [])
    if required:
        return invalid(required[0], "This field is required.")
    if properties:
        field, schema = next(iter(properties.items()))
        message = _WRONG_TYPE.get(schema.get("type", ""), "Not a valid string.")
        return invalid(field, message)
    return rendered(drf.ValidationError("Invalid request."))


def _shared_problems(
    result: dict[str, Any], operation: dict[str, Any]
) -> list[ApplicationError]:
    """The errors any operation of this shape can meet, whatever its view does."""
    errors: list[ApplicationError] = []
    if "requestBody" in operation:
        errors.append(_body_error(result, operation))
        if "application/json" in operation["requestBody"]["content"]:
            errors.append(
                rendered(drf.ParseError("JSON parse error - Expecting value"))
            )
    query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    if "limit" in query:
        errors.append(pagination.invalid_limit())
    if "cursor" in query:
        try:
            pagination.decode_cursor("not-a-cursor")
        except ApplicationError as error:
            errors.append(error)
    headers = {
        p["name"] for p in operation.get("parameters", []) if p["in"] == "header"
    }
    if idempotency.HEADER in headers:
        errors += [
            idempotency.invalid_key(),
            idempotency.key_reused(),
            idempotency.request_in_progress(),
        ]
    errors.append(NotFound("The requested resource does not exist."))
    for parameter in _path_parameters(operation):
        what = _resource_of(parameter)
        errors.append(
            NotFound(
                f"No {what} with id {EXAMPLE_ID} exists.",
                code=f"{what.replace(' ', '_')}_not_found",
            )
        )
    return errors


def add_problem_responses(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Problem-details responses on every operation, with the codes each can carry."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components.setdefault("headers", {}).update(HEADERS)
    shared = _shared_responses()
    for _path, _method, operation in operations(result):
        responses = operation["responses"]
        for error in _shared_problems(result, operation):
            status = str(error.status)
            response = responses.setdefault(
                status,
                {"description": "", "content": {PROBLEM: {"schema": PROBLEM_REF}}},
            )
            _add_examples(response, [error])
        for status, response in shared.items():
            # Inline, not a $ref: every operation reads whole where it stands.
            responses.setdefault(status, copy.deepcopy(response))
        for status, response in responses.items():
            headers = response.setdefault("headers", {})
            headers.setdefault("X-Request-Id", {"$ref": HEADER_REF + "XRequestId"})
            if status.startswith("2") and idempotency.HEADER in {
                p["name"] for p in operation.get("parameters", [])
            }:
                headers["Idempotent-Replayed"] = {
                    "$ref": HEADER_REF + "IdempotentReplayed"
                }
            if PROBLEM in response.get("content", {}):
                _add_examples(response, [])
            _describe(int(status), response)
            if status in ("409", "503"):
                headers.setdefault("Retry-After", {"$ref": HEADER_REF + "RetryAfter"})
    return result


# Where a returned resource's ids sit in its body, by the component of the body.
_SESSION = {"sessionId": "$response.body#/data/sessionId"}
_CALL = {**_SESSION, "callId": "$response.body#/data/callId"}
LINK_SOURCES: dict[str, dict[str, str]] = {
    "SessionEnvelope": _SESSION,
    "CallEnvelope": _CALL,
    "CallWithStreamsEnvelope": _CALL,
    "StreamEnvelope": {**_CALL, "streamId": "$response.body#/data/streamId"},
    "AssetEnvelope": {"assetId": "$response.body#/data/id"},
    "WebhookWithSecretEnvelope": {"webhookId": "$response.body#/data/id"},
    "WebhookEnvelope": {"webhookId": "$response.body#/data/id"},
    # No request creates these: their lists name the first one.
    "RecordingPage": {"recordingId": "$response.body#/data/0/recordingId"},
    "DeliveryPage": {
        "webhookId": "$response.body#/data/0/webhookId",
        "deliveryId": "$response.body#/data/0/id",
    },
}


def add_links(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Link a returned resource to the operations that take its ids.

    From what a POST or PATCH returns, and from the first item of a list of what no
    request creates. A resource's operations are those whose path parameters it names,
    its own id among them: ``createSession`` → ``getSession``, ``connectSession``,
    ``placeCall``…
    """
    by_parameters = [
        (operation["operationId"], set(_path_parameters(operation)))
        for _path, _method, operation in operations(result)
    ]
    for _path, method, operation in operations(result):
        if method not in ("get", "post", "patch"):
            continue
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                continue
            schema = (
                response.get("content", {})
                .get("application/json", {})
                .get("schema", {})
            )
            source = schema.get("$ref", "").rpartition("/")[2]
            ids = LINK_SOURCES.get(source)
            if ids is None or (method == "get") != source.endswith("Page"):
                continue
            own = list(ids)[-1]
            links = {
                target: {
                    "operationId": target,
                    "parameters": {name: ids[name] for name in sorted(parameters)},
                }
                for target, parameters in by_parameters
                if own in parameters
                and parameters <= set(ids)
                and target != operation["operationId"]
            }
            if links:
                response["links"] = links
    return result


def add_examples(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Give components (and their envelopes and pages) real bodies as examples."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, builder in EXAMPLES.items():
        value = builder()
        for component, shown in (
            (name, value),
            (f"{name}Envelope", {"data": value}),
            (f"{name}Page", {"data": [value], "nextCursor": None}),
        ):
            if component in schemas:
                schemas[component]["example"] = shown
    return result
