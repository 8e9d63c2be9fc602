"""OpenAPI: problem-details responses and the Idempotency-Key header on every operation."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail", "code", "requestId"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable snake_case machine code."},
        "param": {"type": "string", "description": "The field at fault, when one is."},
        "requestId": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "param": {"type": "string", "nullable": True},
                    "detail": {"type": "string"},
                    "code": {"type": "string"},
                },
            },
        },
    },
}

_COMMON = {
    "400": "Invalid request (validation_error, malformed_request, invalid_cursor…)",
    "401": "Missing, invalid or revoked API key",
    "404": "Not found (also: another tenant's or environment's object)",
    "405": "Method not allowed",
    "429": "Rate limited; see Retry-After",
    "500": "Internal error",
}
_POST_EXTRA = {
    "409": "Conflict (idempotency_key_reused, idempotency_request_in_progress, state conflicts)",
}


class SwitchboardAutoSchema(AutoSchema):
    pass


def add_problem_responses(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Describe problem-details responses on every operation, and Idempotency-Key on POSTs."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = dict(_COMMON)
            if method in ("post", "patch", "put", "delete"):
                codes.update(_POST_EXTRA)
            for status, description in codes.items():
                operation["responses"].setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/problem+json": {"schema": ref}},
                    },
                )
            if method == "post":
                params = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in params):
                    params.append(
                        {
                            "in": "header",
                            "name": "Idempotency-Key",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 255},
                            "description": "Same key + same body within 24 h replays the first response.",
                        }
                    )
    return result


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "config.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key of one environment: `sb_test_…` or `sb_live_…`.",
        }
