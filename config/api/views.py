"""Small helpers every API view shares."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Environment
from config.api.auth import environment_of


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
