"""A tiny API used only to exercise the shared conventions (idempotency, pagination)."""

from __future__ import annotations

import threading

from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors, services
from config.api.idempotency import idempotent
from config.api.pagination import paginate
from config.api.views import EnvironmentAPIView, ok

gate = threading.Event()


def _render(keys):
    return [{"id": str(k.public_id), "name": k.name} for k in keys]


class KeysView(EnvironmentAPIView):
    def get(self, request: Request) -> Response:
        return Response(
            paginate(request, selectors.api_key_list(self.environment), _render)
        )

    @idempotent
    def post(self, request: Request) -> Response:
        name = str(request.data["name"])  # type: ignore[call-overload]
        if name == "slow":
            gate.wait(5)
        issued = services.api_key_issue(environment=self.environment, name=name)
        return ok(_render([issued.api_key])[0], status=201)


urlpatterns = [
    path("api/v1/keys", KeysView.as_view()),
    path("", include("config.urls")),
]
