"""Small helpers every API view shares."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Environment
from config.api.auth import environment_of
from config.errors import InvalidRequest


def query_names(parameters: Iterable[Any]) -> frozenset[str]:
    """The query parameters among a view's documented OpenAPI parameters."""
    return frozenset(
        parameter.name
        for parameter in parameters
        if getattr(parameter, "location", "query") == "query"
    )


def snake_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """URL parameters as handlers take them: ``{sessionId}`` arrives as ``session_id``."""
    return {
        re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower(): v for name, v in kwargs.items()
    }


def ok(data: Any, status: int = 200) -> Response:
    """Render a success: ``{"data": <object>}``."""
    return Response({"data": data}, status=status)


class EnvironmentAPIView(APIView):
    """An API view whose every lookup is scoped to the calling key's environment.

    A list view names the query parameters its GET takes (``query_parameters``): any
    other is refused with a 400 naming it, rather than silently ignored.
    """

    query_parameters: ClassVar[frozenset[str] | None] = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        allowed = self.query_parameters
        if allowed is None or request.method != "GET":
            return
        for name in request.query_params:
            if name not in allowed:
                raise InvalidRequest(
                    f"Unknown query parameter {name!r}; this list takes "
                    f"{', '.join(sorted(allowed))}.",
                    code="unknown_parameter",
                    param=name,
                )

    @property
    def environment(self) -> Environment:
        return environment_of(self.request)

    def get_environment(self, request: Request) -> Environment:
        return environment_of(request)

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # URLs name their parameters as the API does (`{sessionId}`, like the schema).
        return super().dispatch(request, *args, **snake_kwargs(kwargs))
