from __future__ import annotations

from typing import Any

from django.conf import settings
from djangorestframework_camel_case.parser import CamelCaseMultiPartParser
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from assets import selectors, services
from assets.api.serializers import (
    AssetFilterSerializer,
    AssetSerializer,
    AssetUploadSerializer,
    PlaybackSerializer,
    PlaySerializer,
    StoppedSerializer,
)
from assets.models import AssetStatus
from assets.uploads import AssetUploadHandler, check_declared_length
from calls import selectors as call_selectors
from calls.models import Call
from config.api.idempotency import idempotent
from config.api.pagination import paginate
from config.api.views import EnvironmentAPIView, ok
from config.errors import UnsupportedMediaType

PROBLEM = "application/problem+json"


def problem(description: str) -> OpenApiResponse:
    return OpenApiResponse(
        response={"$ref": "#/components/schemas/Problem"}, description=description
    )


LIST_PARAMETERS = [
    OpenApiParameter("status", str, enum=AssetStatus.values),
    OpenApiParameter("limit", int),
    OpenApiParameter("cursor", str),
]


class AssetListView(EnvironmentAPIView):
    parser_classes = [CamelCaseMultiPartParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method != "POST":
            return
        # Before anything reads the body: its declared size, then its type.
        limit = settings.ASSET_MAX_UPLOAD_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        check_declared_length(declared, limit)
        if not (request.content_type or "").startswith("multipart/form-data"):
            raise UnsupportedMediaType(
                "Upload the file as multipart/form-data, in the field `audio`.",
                extra={"acceptedContentTypes": ["multipart/form-data"]},
            )
        request._request.upload_handlers = [AssetUploadHandler(max_bytes=limit)]

    @extend_schema(
        parameters=LIST_PARAMETERS,
        responses=AssetSerializer(many=True),
        summary="List audio assets",
    )
    def get(self, request: Request) -> Response:
        filters = AssetFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return Response(
            paginate(
                request,
                selectors.asset_list(
                    self.environment, status=filters.validated_data.get("status")
                ),
                lambda page: AssetSerializer(page, many=True).data,
            )
        )

    @extend_schema(
        request={"multipart/form-data": AssetUploadSerializer},
        responses={
            201: AssetSerializer,
            (413, PROBLEM): problem("The file is larger than 32 MiB"),
            (415, PROBLEM): problem(
                "Not multipart/form-data, or not an accepted audio format"
            ),
        },
        summary="Upload an audio asset (decoded in the background)",
        description=(
            "Multipart field `audio`, up to 32 MiB. The format is read from the bytes: "
            "anything else is refused with 415 naming the accepted formats, an "
            "oversized upload with 413 while it streams in. The asset starts "
            "`processing`; `asset.ready` or `asset.failed` tells how decoding ended."
        ),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        body = AssetUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        asset = services.asset_create(
            environment=self.environment, upload=body.validated_data["audio"]
        )
        # Decoding may already have finished (tasks run in-process when embedded).
        asset.refresh_from_db()
        return ok(AssetSerializer(asset).data, status=201)


class AssetDetailView(EnvironmentAPIView):
    @extend_schema(responses=AssetSerializer, summary="Get an audio asset")
    def get(self, request: Request, asset_id: str) -> Response:
        return ok(AssetSerializer(selectors.asset_get(self.environment, asset_id)).data)

    @extend_schema(
        responses={200: AssetSerializer}, summary="Delete an audio asset and its files"
    )
    def delete(self, request: Request, asset_id: str) -> Response:
        asset = services.asset_delete(
            asset=selectors.asset_get(self.environment, asset_id)
        )
        return ok(AssetSerializer(asset).data)


class CallAudioView(EnvironmentAPIView):
    def call(self, session_id: str, call_id: str) -> Call:
        session = call_selectors.session_get(self.environment, session_id)
        return call_selectors.call_get(self.environment, session, call_id)


class PlayView(CallAudioView):
    @extend_schema(
        request=PlaySerializer,
        responses=PlaybackSerializer,
        summary="Play an audio asset into a call",
        description=(
            "The asset must be `ready` (409 `asset_not_ready`) and the call `active` "
            "(409 `call_not_active`). `queue` (default) plays after what is playing "
            "and queued; `interrupt` stops all of that (`call.playback.finished` with "
            "reason `stopped`) and plays this at once."
        ),
    )
    @idempotent
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        call = self.call(session_id, call_id)
        body = PlaySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return ok(
            services.playback_start(
                environment=self.environment,
                call=call,
                asset_id=body.validated_data["asset_id"],
                mode=body.validated_data["mode"],
            )
        )


class StopView(CallAudioView):
    @extend_schema(
        request=None,
        responses=StoppedSerializer,
        summary="Stop the call's current and queued playback",
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        return ok(services.playback_stop(call=self.call(session_id, call_id)))
