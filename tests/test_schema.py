from __future__ import annotations

import pytest
import yaml
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


def _api_routes() -> set[str]:
    """Every /api/v1 route of the URLconf, in OpenAPI path syntax."""
    routes: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                routes.add(prefix + str(pattern.pattern))

    walk(get_resolver().url_patterns, "/")
    import re

    return {
        re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + m.group(1) + "}", route)
        for route in routes
        if route.startswith("/api/v1/") and not route.endswith("/schema")
    }


def test_schema_is_valid_openapi_3_and_lists_every_route(api) -> None:
    response = api.get("/api/v1/schema")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    validate(schema)
    assert schema["openapi"].startswith("3.")
    routes = _api_routes()
    assert routes, "no API routes found"
    assert routes <= set(schema["paths"]), routes - set(schema["paths"])


def test_schema_describes_problem_details_on_every_operation(api) -> None:
    schema = yaml.safe_load(api.get("/api/v1/schema").content)
    assert "Problem" in schema["components"]["schemas"]
    # The media socket refuses before the upgrade with bare statuses, and the
    # Twilio-compatible endpoint answers in Twilio's error shape, as Twilio does.
    own_shape = {"openMediaSocket", "twilioFetchCall", "twilioUpdateCall"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if operation.get("operationId") in own_shape:
                continue
            if method in {"get", "post", "patch", "put", "delete"}:
                for status in ("401", "404", "429"):
                    content = operation["responses"][status]["content"]
                    assert "application/problem+json" in content, (path, method, status)


def test_schema_fields_are_camel_case(api) -> None:
    schema = yaml.safe_load(api.get("/api/v1/schema").content)
    env = schema["components"]["schemas"]["Environment"]["properties"]
    assert "recordingRetentionDays" in env and "recording_retention_days" not in env


def test_docs_page_serves_its_assets_locally(client) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html
