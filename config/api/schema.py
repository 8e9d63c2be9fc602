"""OpenAPI: a schema that says exactly what the wire carries.

Views name their success bodies with ``envelope(Serializer)`` (``{"data": …}``, what
``ok()`` renders) or ``page(Serializer)`` (``{"data": [...], "nextCursor": …}``, what
``paginate()`` renders), give every operation a hand-chosen id and a tag, and list the
problems only they can meet with ``problems(...)``; serializers register real example
bodies with ``@example``. What every operation shares is added by the postprocessing
hooks (``config.api.schema_hooks``); routes DRF does not serve are documented by their
apps' own hooks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from djangorestframework_camel_case.settings import api_settings
from djangorestframework_camel_case.util import camelize
from drf_spectacular.drainage import warn
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_field,
)
from rest_framework import exceptions as drf
from rest_framework import serializers

from config.api import idempotency, pagination
from config.api.errors import (
    PROBLEM_CONTENT_TYPE,
    ApplicationError,
    problem_body,
    to_application_error,
)

PROBLEM = PROBLEM_CONTENT_TYPE
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

# Ids and times the examples show: fixed, so the schema is the same on every request.
EXAMPLE_REQUEST_ID = "req_0197a5c0e1b27c3d9f41a6b8c2d0e4f7"
EXAMPLE_ID = "0197a5c0-0000-7000-8000-000000000000"

STATUS_TEXT = {
    400: "Invalid request",
    401: "Missing, invalid or revoked API key, or a disabled account",
    404: "Not found (also: another tenant's or environment's object)",
    409: "Conflict with the resource's state",
    413: "The request body is too large",
    415: "Unsupported media type",
    429: "Rate limited: wait `Retry-After` seconds",
    500: "Internal error",
    503: "Temporarily unavailable: try again shortly",
}

IDEMPOTENCY_KEY = OpenApiParameter(
    idempotency.HEADER,
    {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH},
    OpenApiParameter.HEADER,
    required=False,
    description="Same key + same body within 24 h replays the first response "
    "(`Idempotent-Replayed: true`); the same key with another body is a 409.",
)

# ---------------------------------------------------------------- for the views

LIMIT = OpenApiParameter(
    "limit",
    {
        "type": "integer",
        "minimum": 1,
        "maximum": pagination.MAX_LIMIT,
        "default": pagination.DEFAULT_LIMIT,
    },
    description="How many items, 1 to 100.",
)
CURSOR = OpenApiParameter(
    "cursor", str, description="The `nextCursor` of the previous page."
)
PAGE = [LIMIT, CURSOR]


@cache
def envelope(
    serializer: type[serializers.BaseSerializer],
) -> type[serializers.Serializer]:
    """The success body ``{"data": <serializer>}`` as a component, ``<Name>Envelope``."""
    name = serializer.__name__.removesuffix("Serializer")
    return type(
        f"{name}EnvelopeSerializer",
        (serializers.Serializer,),
        {
            "__module__": __name__,
            "__doc__": f"A success: `{{data: {name}}}`.",
            "data": serializer(),
        },
    )


@cache
def page(serializer: type[serializers.BaseSerializer]) -> type[serializers.Serializer]:
    """A page of a list, ``{"data": [...], "nextCursor": …}``, as ``<Name>Page``."""
    name = serializer.__name__.removesuffix("Serializer")
    return type(
        f"{name}PageSerializer",
        (serializers.Serializer,),
        {
            "__module__": __name__,
            "__doc__": f"A page of {name} objects, newest first.",
            "data": serializer(many=True),
            "next_cursor": serializers.CharField(
                allow_null=True,
                help_text="Pass as `cursor` for the next page; null on the last one.",
            ),
        },
    )


FieldT = TypeVar("FieldT", bound=serializers.Field)


def documented(field: FieldT, schema: dict[str, Any]) -> FieldT:
    """``field``, documented with ``schema`` (its help text is added as usual)."""
    annotate: Any = extend_schema_field(schema)
    annotated: FieldT = annotate(field)
    return annotated


def url_schema(*schemes: str) -> dict[str, Any]:
    """A URL of these schemes with a host and no #fragment, as the API's checks want."""
    return {
        "type": "string",
        "maxLength": 2048,
        "pattern": rf"^({'|'.join(schemes)})://[A-Za-z0-9.-]+(:[0-9]{{1,4}})?(/[^#\s]*)?$",
    }


def problems(*errors: ApplicationError) -> dict[tuple[int, str], OpenApiResponse]:
    """Problem-details responses a view can give, one real example body per error.

    ``responses={201: envelope(X), **problems(Conflict("…", code="…"))}``; the
    responses every operation shares are added by ``add_problem_responses``.
    """
    by_status: dict[int, list[ApplicationError]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    return {
        (status, PROBLEM): OpenApiResponse(
            PROBLEM_REF,
            description=STATUS_TEXT.get(status, ""),
            examples=[
                OpenApiExample(example_name(error), value=problem_example(error))
                for error in listed
            ],
        )
        for status, listed in by_status.items()
    }


def problem_example(error: ApplicationError) -> dict[str, Any]:
    """The body the exception handler renders for ``error``."""
    return problem_body(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        param=error.param,
        request_id=EXAMPLE_REQUEST_ID,
        extra=error.extra,
    )


def rendered(exc: Exception) -> ApplicationError:
    """The ApplicationError the exception handler makes of a DRF exception."""
    error = to_application_error(exc)
    assert error is not None
    return error


def invalid(field: str, message: str) -> ApplicationError:
    """The validation error DRF raises for one field, as the handler renders it."""
    return rendered(drf.ValidationError({field: [message]}))


EXAMPLES: dict[str, Callable[[], Any]] = {}


def example(component: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register the builder of a real ``component`` body (run when the schema is made).

    The builder renders an in-memory object with the serializer the views use and
    returns it through ``wire()``; its envelope and page get the same example.
    """

    def register(builder: Callable[[], Any]) -> Callable[[], Any]:
        EXAMPLES[component] = builder
        return builder

    return register


def wire(data: Any) -> Any:
    """``data`` as the API's renderer puts it on the wire (camelCase keys)."""
    return camelize(data, **api_settings.JSON_UNDERSCOREIZE)


def example_name(error: ApplicationError) -> str:
    """The name of an error's example in a response."""
    return name_of(problem_example(error))


def name_of(body: dict[str, Any]) -> str:
    """An example's name: its code, and the field at fault if one is."""
    param = body.get("param")
    return f"{body['code']} ({param})" if param else body["code"]


# ---------------------------------------------------------------- generation


class SwitchboardAutoSchema(AutoSchema):
    """Every operation has a hand-chosen id and tag; ``Idempotency-Key`` where honoured."""

    def get_operation_id(self) -> str:
        derived = super().get_operation_id()
        warn(
            f"{self.method} {self.path} has no hand-chosen operation id "
            f"(extend_schema(operation_id=...)); it would be {derived!r}."
        )
        return derived

    def get_tags(self) -> list[str]:
        warn(f"{self.method} {self.path} has no tag (extend_schema(tags=[...])).")
        return super().get_tags()

    def get_description(self) -> str:  # type: ignore[override]
        # The handler's docstring or the view class's own: never one inherited from
        # a base class (EnvironmentAPIView's is about scoping, not about the route).
        handler = getattr(self.view, self.method.lower(), None)
        own = self.view.__class__.__dict__.get("__doc__")
        return inspect.cleandoc(getattr(handler, "__doc__", None) or own or "")

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and getattr(
            serializer, "refuses_unknown_fields", False
        ):
            schema["additionalProperties"] = False
        return schema

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        handler = getattr(self.view, self.method.lower(), None)
        if handler is not None and idempotency.honours_idempotency_key(handler):
            parameters.append(IDEMPOTENCY_KEY)
        return parameters


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "config.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key of one environment: `sb_test_…` or `sb_live_…`.",
        }
