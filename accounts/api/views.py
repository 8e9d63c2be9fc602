from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from accounts.api.serializers import (
    EnvironmentSerializer,
    EnvironmentUpdateSerializer,
    SigningSecretSerializer,
)
from config.api.schema import envelope
from config.api.views import EnvironmentAPIView, ok


@extend_schema(tags=["Environment"])
class EnvironmentView(EnvironmentAPIView):
    @extend_schema(
        operation_id="getEnvironment",
        responses=envelope(EnvironmentSerializer),
        summary="The calling key's environment",
    )
    def get(self, request: Request) -> Response:
        return ok(EnvironmentSerializer(self.environment).data)

    @extend_schema(
        operation_id="updateEnvironment",
        request=EnvironmentUpdateSerializer,
        responses=envelope(EnvironmentSerializer),
        summary="Change the environment's settings",
        description="Retention applies to recordings made from now on.",
        examples=[
            OpenApiExample(
                "Keep recordings a week",
                value={"recordingRetentionDays": 7},
                request_only=True,
            )
        ],
    )
    def patch(self, request: Request) -> Response:
        body = EnvironmentUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        environment = services.environment_update(
            environment=self.environment, **body.validated_data
        )
        return ok(EnvironmentSerializer(environment).data)


@extend_schema(tags=["Environment"])
class SigningSecretView(EnvironmentAPIView):
    @extend_schema(
        operation_id="rotateSigningSecret",
        request=None,
        responses=envelope(SigningSecretSerializer),
        summary="Rotate the environment's signing secret (shown once)",
        description=(
            "The secret signs dial-out stream handshakes (`X-Switchboard-Signature`) and "
            "stream status callbacks. The previous secret stops working at once."
        ),
    )
    def post(self, request: Request) -> Response:
        secret = services.environment_rotate_signing_secret(
            environment=self.environment
        )
        return ok({"signing_secret": secret})
