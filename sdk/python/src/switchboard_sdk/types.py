"""What the API returns, as ``TypedDict``\\ s: plain dicts at run time.

Keys are the wire's own camelCase names (``call["endReason"]``), so what you read in
the API reference is what you index with. Every type is ``total=False``: a key the
server does not send (an older server, a field added later) is simply absent.
"""

from __future__ import annotations

from typing import Any, Literal, Required, TypedDict

CallState = Literal["initiating", "ringing", "active", "ended"]
Direction = Literal["outgoing", "incoming"]


class LastError(TypedDict, total=False):
    code: str
    message: str
    at: str


class Session(TypedDict, total=False):
    sessionId: str
    displayName: str
    deviceBrowser: str
    status: str  # ready | pairing | connecting | error | offline | unpaired
    paired: bool
    active: bool
    connected: bool
    # created | connecting | connected | inactive | disconnected | error
    connectionState: str
    phoneJid: str | None
    carrier: str
    lastError: LastError | None
    createdAt: str
    updatedAt: str
    connectedAt: str | None
    sip: dict[str, Any]
    whatsapp: dict[str, Any]


class QrCode(TypedDict, total=False):
    qr: str
    ttlMs: int
    createdAt: str


class PairingCode(TypedDict, total=False):
    code: str


class EndDetail(TypedDict, total=False):
    carrier: str
    code: str
    message: str


class RecordingSummary(TypedDict, total=False):
    recordingId: str
    kind: str
    durationMs: int


class StreamOptions(TypedDict, total=False):
    """One dial-out media stream, as given to ``calls.place(streams=[...])``."""

    url: Required[str]
    type: Literal["oneway", "twoway"]
    channel: Literal["inbound", "outbound", "both"]
    format: Literal["mulaw_8000", "pcm16_16000", "pcm16_24000", "f32_16000"]
    dialect: Literal["wavix", "twilio"]
    headers: dict[str, str]
    customParameters: dict[str, str]
    onDisconnect: Literal["continue", "hangup", "reconnect"]
    statusCallback: str


class Stream(TypedDict, total=False):
    streamId: str
    callId: str
    sessionId: str
    url: str
    type: str
    channel: str
    format: str
    dialect: str
    headers: dict[str, str]
    customParameters: dict[str, str]
    onDisconnect: str
    statusCallback: str | None
    state: str
    reason: str | None
    framesSent: int
    framesReceived: int
    framesDropped: int
    protocolErrors: int
    reconnects: int
    lastError: str | None
    createdAt: str
    startedAt: str | None
    stoppedAt: str | None
    updatedAt: str


class Call(TypedDict, total=False):
    callId: str
    sessionId: str
    peerJid: str
    direction: Direction
    mediaType: str
    state: CallState
    endReason: str | None
    endDetail: EndDetail | None
    carrier: str
    transport: str | None
    mediaUrl: str  # the live media socket, at the server process hosting the call
    audioMuted: bool
    record: bool
    createdAt: str
    ringingAt: str | None
    answeredAt: str | None
    endedAt: str | None
    durationMs: int | None
    recordings: list[RecordingSummary]
    streams: list[Stream]


class Asset(TypedDict, total=False):
    id: str
    filename: str
    contentType: str
    sizeBytes: int
    durationMs: int | None
    sampleRate: int | None
    channels: int | None
    status: Literal["processing", "ready", "failed"]
    error: str | None
    createdAt: str


class Playback(TypedDict, total=False):
    playbackId: str
    assetId: str
    state: str  # queued | playing | completed | stopped | call_ended
    startedAt: str | None


class PlaybackStopped(TypedDict, total=False):
    stopped: list[Playback]


class Recording(TypedDict, total=False):
    recordingId: str
    callId: str
    sessionId: str
    kind: Literal["inbound", "outbound", "mixed"]
    contentType: str
    sampleRate: int
    channels: int
    durationMs: int
    sizeBytes: int
    createdAt: str
    expiresAt: str


class Event(TypedDict, total=False):
    """The event envelope, the same in the log, in SSE and in webhooks."""

    id: str
    type: str
    createdAt: str
    sessionId: str | None
    data: dict[str, Any]


class Webhook(TypedDict, total=False):
    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabledReason: str | None
    secretRotatedAt: str | None
    createdAt: str
    updatedAt: str


class WebhookWithSecret(Webhook, total=False):
    secret: str  # whsec_…, shown in this response only


class DeliveryAttempt(TypedDict, total=False):
    attempt: int
    manual: bool
    startedAt: str
    finishedAt: str | None
    succeeded: bool
    statusCode: int | None
    latencyMs: int | None
    error: str
    responseBody: str
    nextRetryAt: str | None


class Delivery(TypedDict, total=False):
    id: str
    webhookId: str
    eventId: str
    eventType: str
    status: Literal["pending", "succeeded", "failed"]
    attemptCount: int
    nextAttemptAt: str | None
    lastStatusCode: int | None
    lastError: str
    createdAt: str
    completedAt: str | None
    attempts: list[DeliveryAttempt]


class Environment(TypedDict, total=False):
    id: str
    accountId: str
    accountName: str
    kind: Literal["live", "test"]
    recordingRetentionDays: int
    recordCalls: bool
    eventRetentionDays: int
    callRetentionDays: int
    endCallWhenClientGoneAfterS: int
    createdAt: str
    updatedAt: str


class SigningSecret(TypedDict, total=False):
    signingSecret: str
