"""What the calls app's services answer when a session or call is not in a state for a
request, as the schema documents them (each rendered as one example body)."""

from __future__ import annotations

from config.errors import Conflict, InvalidRequest, ServiceUnavailable

SESSION_DELETED = Conflict("The session has been deleted.", code="session_deleted")
NOT_PAIRING = Conflict(
    "The session is not pairing; POST …/connect first.", code="session_not_connecting"
)
ALREADY_PAIRED = Conflict(
    "The session is already paired.", code="session_already_paired"
)
NOT_READY = Conflict(
    "The session must be paired and connected to make or receive calls.",
    code="session_not_ready",
)
CALL_ENDED = Conflict("The call has ended.", code="call_not_active")
NOT_RINGING = Conflict("The call is active, not ringing.", code="call_not_ringing")
NOT_INCOMING = Conflict(
    "Only incoming calls can be accepted.", code="call_not_incoming"
)
STREAM_LIMIT = Conflict(
    "A call has at most 1 twoway and 5 oneway live streams; this would make 2 twoway "
    "and 0 oneway.",
    code="stream_limit",
)
HOST_UNAVAILABLE = ServiceUnavailable(
    "The process hosting this call is not answering; try again shortly.",
    code="call_host_unavailable",
)
CARRIER_UNAVAILABLE = InvalidRequest(
    "Carrier 'sip' is not available in test environments; choose one of: simulator.",
    code="carrier_not_available",
    param="carrier",
)
