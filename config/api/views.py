"""Small helpers every API view shares."""

from __future__ import annotations

import re
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Environment
from config.api.auth import environment_of


def snake_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """URL parameters as handlers take them: ``{sessionId}`` arrives as ``session_id``."""
    return {
        re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower(): v for name, v in kwargs.items()
    }


def ok(data: Any, status: int = 200) -> Response:
    """Render a success: ``{"data": <object>}``."""
    return Response({"data": data}, status=status)


class EnvironmentAPIView(APIView):
    """An API view whose every lookup is scoped to the calling key's environment."""

    @property
    def environment(self) -> Environment:
        return environment_of(self.request)

    def get_environment(self, request: Request) -> Environment:
        return environment_of(request)

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # URLs name their parameters as the API does (`{sessionId}`, like the schema).
        return super().dispatch(request, *args, **snake_kwargs(kwargs))
