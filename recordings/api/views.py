from __future__ import annotations

from collections.abc import Iterable

from django.http import FileResponse, HttpResponseBase, HttpResponseRedirect
from djangorestframework_camel_case.util import underscoreize
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.pagination import paginate
from config.api.schema import EXAMPLE_ID, PAGE, envelope, page, problems
from config.api.views import EnvironmentAPIView, ok, query_names
from config.errors import NotFound
from recordings import selectors, services
from recordings.api.serializers import RecordingFilterSerializer, RecordingSerializer
from recordings.models import CONTENT_TYPE, Recording, RecordingKind

LIST_PARAMETERS = [
    OpenApiParameter(
        "callId", OpenApiTypes.UUID, description="Only this call's recordings"
    ),
    OpenApiParameter("kind", str, enum=RecordingKind.values),
    *PAGE,
]


@extend_schema(tags=["Recordings"])
class RecordingListView(EnvironmentAPIView):
    query_parameters = query_names(LIST_PARAMETERS)

    @extend_schema(
        operation_id="listRecordings",
        parameters=LIST_PARAMETERS,
        responses={
            200: page(RecordingSerializer),
            **problems(
                NotFound(f"No call with id {EXAMPLE_ID} exists.", code="call_not_found")
            ),
        },
        summary="List recordings",
        description=(
            "Newest first. `callId` must name a call of this environment (404 "
            "otherwise). Expired recordings are not listed, purged or not."
        ),
    )
    def get(self, request: Request) -> Response:
        # Query parameters are camelCase too (the camelCase parser sees only bodies).
        filters = RecordingFilterSerializer(data=underscoreize(request.query_params))
        filters.is_valid(raise_exception=True)
        call_id = filters.validated_data.get("call_id")
        call = (
            None if call_id is None else selectors.call_get(self.environment, call_id)
        )
        return Response(
            paginate(
                request,
                selectors.recording_list(
                    self.environment, call=call, kind=filters.validated_data.get("kind")
                ),
                lambda page: RecordingSerializer(page, many=True).data,
            )
        )


@extend_schema(tags=["Recordings"])
class RecordingDetailView(EnvironmentAPIView):
    @extend_schema(
        operation_id="getRecording",
        responses=envelope(RecordingSerializer),
        summary="Get a recording",
    )
    def get(self, request: Request, recording_id: str) -> Response:
        recording = selectors.recording_get(self.environment, recording_id)
        return ok(RecordingSerializer(recording).data)

    @extend_schema(
        operation_id="deleteRecording",
        responses={200: envelope(RecordingSerializer)},
        summary="Delete a recording and its file",
    )
    def delete(self, request: Request, recording_id: str) -> Response:
        recording = services.recording_delete(
            recording=selectors.recording_get(self.environment, recording_id)
        )
        return ok(RecordingSerializer(recording).data)


class _AnyAccept(DefaultContentNegotiation):
    """The audio route answers with a WAV (or a redirect) whatever ``Accept`` says."""

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


@extend_schema(tags=["Recordings"])
class RecordingAudioView(EnvironmentAPIView):
    content_negotiation_class = _AnyAccept

    @extend_schema(
        operation_id="downloadRecordingAudio",
        parameters=[
            OpenApiParameter(
                "Location",
                str,
                OpenApiParameter.HEADER,
                response=[302],
                description="The signed URL of the WAV.",
            )
        ],
        responses={
            (200, CONTENT_TYPE): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The WAV: 16 kHz, 16-bit PCM, mono (local storage)",
            ),
            302: OpenApiResponse(
                description="S3 storage: a short-lived signed URL in `Location`"
            ),
            **problems(
                NotFound(
                    "The recording's audio is no longer stored.",
                    code="recording_not_found",
                )
            ),
        },
        summary="Download a recording's WAV",
    )
    def get(self, request: Request, recording_id: str) -> HttpResponseBase:
        recording = selectors.recording_get(self.environment, recording_id)
        return recording_audio_response(recording)


def recording_audio_response(recording: Recording) -> HttpResponseBase:
    """Stream a recording's WAV from local storage, or redirect to a signed URL."""
    location = selectors.recording_audio_location(recording)
    if location.url is not None:
        return HttpResponseRedirect(location.url)
    assert location.path is not None
    try:
        wav = open(location.path, "rb")  # noqa: SIM115 - FileResponse closes it
    except FileNotFoundError:
        raise NotFound(
            "The recording's audio is no longer stored.", code="recording_not_found"
        ) from None
    return FileResponse(
        wav,
        content_type=CONTENT_TYPE,
        filename=f"{recording.call.public_id}-{recording.kind}.wav",
    )
