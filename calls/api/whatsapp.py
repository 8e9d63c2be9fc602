"""The webhook Meta calls for a WhatsApp session (DESIGN §11.2).

``GET/POST /carriers/whatsapp/{sessionId}/webhook``: see ``calls.carriers.whatsapp.webhook``
for what each does. Errors are problem details, like the API's.
"""

from __future__ import annotations

import hmac
import json
import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from calls.carriers.whatsapp.webhook import (
    MAX_BODY_BYTES,
    dispatch,
    items_of,
    session_of,
    signed,
)
from config.api.errors import problem_body, request_id_of

logger = logging.getLogger(__name__)


def _problem(
    request: HttpRequest, status: int, code: str, title: str, detail: str
) -> JsonResponse:
    return JsonResponse(
        problem_body(
            status=status,
            code=code,
            title=title,
            detail=detail,
            request_id=request_id_of(request),
        ),
        status=status,
        content_type="application/problem+json",
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest, session_id: str) -> HttpResponse:
    from calls.credentials import CredentialsUnreadable, unseal

    session = session_of(session_id)
    if session is None:
        return _problem(
            request,
            404,
            "session_not_found",
            "Not found",
            "No WhatsApp session has this webhook.",
        )
    settings = session.carrier_settings or {}
    if request.method == "GET":
        token = str(request.GET.get("hub.verify_token") or "")
        expected = str(settings.get("verify_token") or "")
        if (
            request.GET.get("hub.mode") == "subscribe"
            and expected
            and hmac.compare_digest(token.encode(), expected.encode())
        ):
            challenge = str(request.GET.get("hub.challenge") or "")[:256]
            return HttpResponse(challenge, content_type="text/plain")
        return _problem(
            request,
            403,
            "verify_token_mismatch",
            "Forbidden",
            "hub.verify_token is not this session's verify token.",
        )

    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY_BYTES:
        return _problem(
            request, 413, "payload_too_large", "Too large", "The body is over 1 MB."
        )
    body = request.body
    try:
        secret = str(unseal(session.credentials).get("app_secret") or "")
    except CredentialsUnreadable:
        secret = ""
    header = request.headers.get("X-Hub-Signature-256", "")
    if not secret or not signed(secret, body, header):
        return _problem(
            request,
            401,
            "signature_invalid",
            "Unauthorized",
            "X-Hub-Signature-256 is not the HMAC-SHA256 of the body with the app "
            "secret.",
        )
    try:
        payload = json.loads(body)
    except ValueError:
        return _problem(
            request, 400, "invalid_json", "Bad request", "The body is not JSON."
        )
    items = items_of(payload, str(settings.get("phone_number_id") or ""))
    if items and not session.active:
        logger.info(
            "WhatsApp webhook for disconnected session %s ignored", session.public_id
        )
        return JsonResponse({"received": 0})
    if items and not dispatch(session, items):
        logger.warning(
            "WhatsApp webhook for session %s: no live process holds its line",
            session.public_id,
        )
        return _problem(
            request,
            503,
            "line_not_held",
            "Line not connected",
            "No process holds this session's line right now; Meta will retry.",
        )
    return JsonResponse({"received": len(items)})
