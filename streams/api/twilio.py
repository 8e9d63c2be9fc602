"""A Twilio-compatible Call resource, so bots that hang up through Twilio's REST API work.

``POST /twilio/2010-04-01/Accounts/{accountSid}/Calls/{callSid}.json`` with
``Status=completed`` (or ``canceled``) ends the call; ``GET`` fetches it. Authentication
is HTTP Basic ``accountSid:<api key>``, where ``accountSid`` is the value the stream's
``start`` frame gave (``AC`` + the environment's id) and the key belongs to that
environment. Answers and errors are shaped like Twilio's, not like Switchboard's API:
the clients of this endpoint are Twilio SDKs.
"""

from __future__ import annotations

import base64
import binascii
from email.utils import format_datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.models import Environment
from calls.models import Call, CallState, Direction, EndReason
from calls.runtime import control
from config.api.auth import authenticate_key
from config.api.ratelimit import hit
from config.errors import ApplicationError, Unauthenticated
from config.tenancy import scoped_get
from streams.sids import account_sid, call_sid, parse_sid

API_VERSION = "2010-04-01"
ENDING_STATUSES = ("completed", "canceled")


class TwilioError(Exception):
    def __init__(
        self, status: int, code: int | None, message: str, **headers: str
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = (
            status,
            code,
            message,
            headers,
        )

    def response(self) -> JsonResponse:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}"
            if self.code
            else None,
            "status": self.status,
        }
        response = JsonResponse(body, status=self.status)
        for name, value in self.headers.items():
            response[name.replace("_", "-")] = value
        return response


def _unauthorized() -> TwilioError:
    return TwilioError(
        401, 20003, "Authenticate", WWW_Authenticate='Basic realm="Switchboard"'
    )


def _basic_credentials(request: HttpRequest) -> tuple[str, str]:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise _unauthorized()
    try:
        username, _, password = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized() from None
    return username, password


def _environment(request: HttpRequest, path_account_sid: str) -> Environment:
    username, password = _basic_credentials(request)
    try:
        api_key = authenticate_key(password or None)
    except Unauthenticated:
        raise _unauthorized() from None
    environment = api_key.environment
    own_sid = account_sid(environment.public_id)
    if username != own_sid or path_account_sid != own_sid:
        raise _unauthorized()
    count, remaining = hit(f"key:{api_key.public_id}")
    if count > settings.API_RATE_LIMIT_PER_MINUTE:
        raise TwilioError(
            429,
            20429,
            "Too Many Requests",
            Retry_After=str(max(1, round(remaining))),
        )
    return environment


def _call(environment: Environment, path: str, sid: str) -> Call:
    call_id = parse_sid("CA", sid)
    try:
        return scoped_get(
            Call.objects.select_related("session"), environment, call_id, what="call"
        )
    except ApplicationError:
        raise TwilioError(
            404, 20404, f"The requested resource {path} was not found"
        ) from None


def _status(call: Call) -> str:
    if call.state == CallState.INITIATING:
        return "queued"
    if call.state == CallState.RINGING:
        return "ringing"
    if call.state == CallState.ACTIVE:
        return "in-progress"
    reason = call.end_reason
    if reason in (EndReason.BUSY, EndReason.DECLINED, EndReason.REJECTED):
        return "busy"
    if reason in (EndReason.NO_ANSWER, EndReason.MISSED):
        return "no-answer"
    if reason == EndReason.FAILED:
        return "failed"
    if call.answered_at is None:
        return "canceled"
    return "completed"


def _date(value: Any) -> str | None:
    return format_datetime(value) if value is not None else None


def twilio_call(call: Call, environment: Environment) -> dict[str, Any]:
    """A call as Twilio's Call resource represents one (fields Switchboard lacks: null)."""
    sid = call_sid(call.public_id)
    account = account_sid(environment.public_id)
    local = call.session.address or None
    outgoing = call.direction == Direction.OUTGOING
    duration = call.duration_ms // 1000 if call.state == CallState.ENDED else None
    return {
        "sid": sid,
        "account_sid": account,
        "parent_call_sid": None,
        "date_created": _date(call.created_at),
        "date_updated": _date(call.updated_at),
        "to": call.peer_address if outgoing else local,
        "to_formatted": call.peer_address if outgoing else local,
        "from": local if outgoing else call.peer_address,
        "from_formatted": local if outgoing else call.peer_address,
        "phone_number_sid": None,
        "status": _status(call),
        "start_time": _date(call.answered_at),
        "end_time": _date(call.ended_at),
        "duration": str(duration) if duration is not None else None,
        "price": None,
        "price_unit": "USD",
        "direction": "outbound-api" if outgoing else "inbound",
        "answered_by": None,
        "api_version": API_VERSION,
        "forwarded_from": None,
        "group_sid": None,
        "caller_name": None,
        "queue_time": "0",
        "trunk_sid": None,
        "uri": f"/{API_VERSION}/Accounts/{account}/Calls/{sid}.json",
        "subresource_uris": {},
    }


@csrf_exempt
def call_resource(request: HttpRequest, account: str, sid: str) -> JsonResponse:
    """Fetch a call (GET) or hang it up (POST ``Status=completed``), Twilio-style."""
    path = f"/{API_VERSION}/Accounts/{account}/Calls/{sid}.json"
    try:
        if request.method not in ("GET", "POST"):
            raise TwilioError(405, 20004, "Method not allowed", Allow="GET, POST")
        environment = _environment(request, account)
        call = _call(environment, path, sid)
        if request.method == "POST":
            status = request.POST.get("Status")
            if status not in ENDING_STATUSES:
                raise TwilioError(
                    400,
                    None,
                    "Switchboard supports only Status=completed (or canceled) here.",
                )
            try:
                control.call_end(call)
            except ApplicationError as error:
                raise TwilioError(error.status, None, error.detail) from None
            call.refresh_from_db()
        return JsonResponse(twilio_call(call, environment))
    except TwilioError as error:
        return error.response()
