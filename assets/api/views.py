from __future__ import annotations

from typing import Any

from django.conf import settings
from djangorestframework_camel_case.parser import CamelCaseMultiPartParser
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
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
from assets.uploads import (
    FIELD,
    AssetUploadHandler,
    check_declared_length,
    not_audio,
    too_large,
)
from calls import selectors as call_selectors
from calls.models import Call
from config.api.idempotency import idempotent
from config.api.pagination import paginate
from config.api.schema import EXAMPLE_ID, PAGE, envelope, page, problems
from config.api.views import EnvironmentAPIView, ok, query_names
from config.errors import Conflict, InvalidRequest, NotFound, UnsupportedMediaType

LIST_PARAMETERS = [
    OpenApiParameter("status", str, enum=AssetStatus.values),
    *PAGE,
]
NOT_MULTIPART = UnsupportedMediaType(
    "Upload the file as multipart/form-data, in the field `audio`.",
    extra={"acceptedContentTypes": ["multipart/form-data"]},
)
CALL_NOT_ACTIVE = Conflict(
    "The call is ended; audio plays only into active calls.", code="call_not_active"
)


@extend_schema(tags=["Assets"])
class AssetListView(EnvironmentAPIView):
    query_parameters = query_names(LIST_PARAMETERS)

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
            raise NOT_MULTIPART
        request._request.upload_handlers = [AssetUploadHandler(max_bytes=limit)]

    @extend_schema(
        operation_id="listAssets",
        parameters=LIST_PARAMETERS,
        responses=page(AssetSerializer),
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
        operation_id="uploadAsset",
        request={"multipart/form-data": AssetUploadSerializer},
        responses={
            201: envelope(AssetSerializer),
            **problems(
                InvalidRequest(
                    "The WAV file contains no audio.",
                    code="empty_audio",
                    param=FIELD,
                ),
                too_large(settings.ASSET_MAX_UPLOAD_BYTES),
                NOT_MULTIPART,
                not_audio(),
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


@extend_schema(tags=["Assets"])
class AssetDetailView(EnvironmentAPIView):
    @extend_schema(
        operation_id="getAsset",
        responses=envelope(AssetSerializer),
        summary="Get an audio asset",
    )
    def get(self, request: Request, asset_id: str) -> Response:
        return ok(AssetSerializer(selectors.asset_get(self.environment, asset_id)).data)

    @extend_schema(
        operation_id="deleteAsset",
        responses={200: envelope(AssetSerializer)},
        summary="Delete an audio asset and its files",
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


@extend_schema(tags=["Playback"])
class PlayView(CallAudioView):
    @extend_schema(
        operation_id="playAudio",
        request=PlaySerializer,
        responses={
            200: envelope(PlaybackSerializer),
            **problems(
                NotFound(
                    f"No asset with id {EXAMPLE_ID} exists.", code="asset_not_found"
                ),
                Conflict(
                    "The asset is processing; only ready assets can be played.",
                    code="asset_not_ready",
                ),
                CALL_NOT_ACTIVE,
            ),
        },
        summary="Play an audio asset into a call",
        description=(
            "The asset must be `ready` (409 `asset_not_ready`) and the call `active` "
            "(409 `call_not_active`). `queue` (default) plays after what is playing "
            "and queued; `interrupt` stops all of that (`call.playback.finished` with "
            "reason `stopped`) and plays this at once."
        ),
        examples=[
            OpenApiExample(
                "Interrupt",
                value={"assetId": EXAMPLE_ID, "mode": "interrupt"},
                request_only=True,
            )
        ],
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


@extend_schema(tags=["Playback"])
class StopView(CallAudioView):
    @extend_schema(
        operation_id="stopAudio",
        request=None,
        responses={200: envelope(StoppedSerializer), **problems(CALL_NOT_ACTIVE)},
        summary="Stop the call's current and queued playback",
    )
    def post(self, request: Request, session_id: str, call_id: str) -> Response:
        return ok(services.playback_stop(call=self.call(session_id, call_id)))
