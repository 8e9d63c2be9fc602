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
import uuid
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


# ---------------------------------------------------------------- OpenAPI

PATH = f"/twilio/{API_VERSION}/Accounts/{{accountSid}}/Calls/{{callSid}}.json"
_NULLABLE_STRING = {"type": "string", "nullable": True}
_CALL_FIELDS = {
    "sid": {"type": "string"},
    "account_sid": {"type": "string"},
    "status": {
        "type": "string",
        "enum": [
            "queued",
            "ringing",
            "in-progress",
            "completed",
            "busy",
            "no-answer",
            "failed",
            "canceled",
        ],
    },
    "direction": {"type": "string", "enum": ["outbound-api", "inbound"]},
    "api_version": {"type": "string"},
    "uri": {"type": "string"},
    "price_unit": {"type": "string"},
    "queue_time": {"type": "string"},
    "subresource_uris": {"type": "object"},
}
_NULLABLE_FIELDS = [
    "parent_call_sid",
    "date_created",
    "date_updated",
    "to",
    "to_formatted",
    "from",
    "from_formatted",
    "phone_number_sid",
    "start_time",
    "end_time",
    "duration",
    "price",
    "answered_by",
    "forwarded_from",
    "group_sid",
    "caller_name",
    "trunk_sid",
]
TWILIO_CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Twilio's Call resource (fields Switchboard has no value for: null).",
    "required": [*_CALL_FIELDS, *_NULLABLE_FIELDS],
    "properties": {
        **_CALL_FIELDS,
        **{name: dict(_NULLABLE_STRING) for name in _NULLABLE_FIELDS},
    },
}
TWILIO_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error as Twilio shapes one.",
    "required": ["code", "message", "more_info", "status"],
    "properties": {
        "code": {"type": "integer", "nullable": True},
        "message": {"type": "string"},
        "more_info": {"type": "string", "nullable": True},
        "status": {"type": "integer"},
    },
}
DESCRIPTION = """\
For voice-AI frameworks that speak the `twilio` stream dialect and hang up through \
Twilio's REST API: point their Twilio client at this host. HTTP Basic auth, \
`accountSid:<api key>`, where `accountSid` is the value the stream's `start` frame gave \
(`AC` + the environment's id) and the key belongs to that environment; `callSid` is the \
`start` frame's `callSid`. Answers and errors are shaped like Twilio's.\
"""


def document_call_resource(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Add the Twilio-compatible Call resource to the schema."""
    from calls.api.serializers import example_call
    from config.api.schema_hooks import HEADER_REF

    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(TwilioCall=dict(TWILIO_CALL_SCHEMA), TwilioError=TWILIO_ERROR_SCHEMA)
    components.setdefault("securitySchemes", {})["TwilioBasic"] = {
        "type": "http",
        "scheme": "basic",
        "description": "`accountSid` as the user name, an API key as the password.",
    }
    call = example_call()
    environment = Environment(
        public_id=uuid.UUID("0197a5bf-2c4d-7e5f-8a6b-7c8d9e0f1a2b")
    )
    schemas["TwilioCall"]["example"] = twilio_call(call, environment)
    headers = {"X-Request-Id": {"$ref": HEADER_REF + "XRequestId"}}
    call_response = {
        "description": "The call, as Twilio's Call resource.",
        "headers": headers,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TwilioCall"}}
        },
    }
    errors = {
        str(status): {
            "description": description,
            "headers": headers,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/TwilioError"}
                }
            },
        }
        for status, description in (
            (400, "Status is not `completed` or `canceled`"),
            (401, "No valid `accountSid:<api key>` for this account"),
            (404, "No such call in this account"),
            (429, "Rate limited (the key's own limit)"),
        )
    }
    parameters = [
        {
            "in": "path",
            "name": "accountSid",
            "required": True,
            "description": "`AC` + the environment's id (hex).",
            "schema": {"type": "string", "pattern": "^AC[0-9a-f]{32}$"},
        },
        {
            "in": "path",
            "name": "callSid",
            "required": True,
            "description": "`CA` + the call's id (hex).",
            "schema": {"type": "string", "pattern": "^CA[0-9a-f]{32}$"},
        },
    ]
    common: dict[str, Any] = {
        "tags": ["Twilio compatibility"],
        "description": DESCRIPTION,
        "parameters": parameters,
        "security": [{"TwilioBasic": []}],
    }
    result["paths"][PATH] = {
        "get": {
            **common,
            "operationId": "twilioFetchCall",
            "summary": "Fetch a call, Twilio-style",
            "responses": {"200": call_response, **errors},
        },
        "post": {
            **common,
            "operationId": "twilioUpdateCall",
            "summary": "Hang up a call, Twilio-style (`Status=completed`)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["Status"],
                            "properties": {
                                "Status": {
                                    "type": "string",
                                    "enum": list(ENDING_STATUSES),
                                }
                            },
                        }
                    }
                },
            },
            "responses": {"200": call_response, **errors},
        },
    }
    return result
