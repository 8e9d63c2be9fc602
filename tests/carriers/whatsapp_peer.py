"""A stand-in for Meta's WhatsApp Business Platform (Cloud API Calling) in tests.

``FakeGraph`` is a real HTTP server on 127.0.0.1 that speaks the slice of the Graph API
the ``whatsapp`` carrier uses (``GET /{phone_number_id}``, ``POST /{phone_number_id}/calls``
with the actions ``connect``, ``pre_accept``, ``accept``, ``reject`` and ``terminate``),
and that posts signed webhooks (``X-Hub-Signature-256``) to each number's webhook URL,
in Meta's envelope, the way Meta does.

Behind it, ``WhatsAppUser`` peers play the WhatsApp users: one ``aiortc`` peer
connection per call, which sends back (echoes) the audio it receives and keeps what it
heard. The peers all run on one asyncio event loop in a daemon thread of the fake; the
HTTP server and each call's webhook sender run in threads of their own, so tests may
drive the fake from sync code or from their own event loop alike.

Business-initiated calls behave by the number they go to (digits, no plus):

- ``15550000001`` answers and echoes (as does any number not listed here);
- ``15550000006`` answers, then hangs up 0.5 s after ``ACCEPTED``;
- ``15550000004`` rings and never answers (``FAILED`` after 0.5 s);
- ``15550000005`` declines (``REJECTED``);
- ``15550000008`` answers with an SDP whose candidates point to 127.0.0.1 port 9, so
  ICE never completes;
- ``15550000007`` has given no call permission: the ``connect`` fails with error 138006.

Users call the business with ``FakeGraph.call_in``. ICE runs on loopback only: aioice
leaves 127.0.0.1 out of its host candidates, so this module makes it offer just that
(the carrier under test does the same in this process). There is no STUN and no
trickle: every SDP carries its candidates, as Meta's do.

This module depends on nothing in the project, only on the standard library, aiortc,
aioice, av, numpy and httpx.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import json
import logging
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aioice.ice
import httpx
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription
from av import AudioFrame
from av.audio.resampler import AudioResampler

logger = logging.getLogger(__name__)

GRAPH_VERSION = "v23.0"

# Business-initiated calls: the user at each number, by behaviour.
ECHO_USER = "15550000001"
NO_ANSWER_USER = "15550000004"
DECLINING_USER = "15550000005"
HANGING_UP_USER = "15550000006"
NO_PERMISSION_USER = "15550000007"
UNREACHABLE_USER = "15550000008"

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
TIME_BASE = Fraction(1, SAMPLE_RATE)
ECHO_QUEUE_FRAMES = 25
HEARD_SECONDS = 60.0
# The pacing of the echo restarts rather than bursting when the loop fell this far behind.
MAX_LAG = 0.2

# How long a scripted user waits before giving up / hanging up (after the webhook before).
GIVE_UP_AFTER = 0.5
NO_ANSWER_AFTER = 0.5
HANG_UP_AFTER = 0.5

# Upper bounds: work on the peers' loop, and a webhook POST.
LOOP_TIMEOUT = 30.0
WEBHOOK_TIMEOUT = 30.0
CLOSE_TIMEOUT = 10.0

VERIFIED_NAME = "Switchboard Test"
USER_NAME = "Test User"
UNREACHABLE_HOST = "127.0.0.1"
UNREACHABLE_PORT = 9

T = TypeVar("T")


# ------------------------------------------------------------------ ICE on loopback


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """aioice's host addresses, on loopback: just 127.0.0.1 (IPv4), nothing else."""
    return ["127.0.0.1"] if use_ipv4 else []


def use_loopback_ice() -> None:
    """Make aioice gather host candidates on 127.0.0.1 only (idempotent)."""
    if aioice.ice.get_host_addresses is not _loopback_host_addresses:
        aioice.ice.get_host_addresses = _loopback_host_addresses


use_loopback_ice()


# ------------------------------------------------------------------ audio


def _silence() -> np.ndarray:
    return np.zeros(FRAME_SAMPLES, dtype=np.int16)


class _Mono48k:
    """Turns received audio frames into float32 mono samples at 48 kHz."""

    def __init__(self) -> None:
        self._resampler: AudioResampler | None = None

    def convert(self, frame: AudioFrame) -> np.ndarray:
        name = frame.format.name
        channels = len(frame.layout.channels)
        if frame.sample_rate == SAMPLE_RATE and name in ("s16", "s16p", "flt", "fltp"):
            data = frame.to_ndarray()
            if frame.format.is_planar:
                samples = data.reshape(channels, -1).astype(np.float32).mean(axis=0)
            else:
                samples = data.reshape(-1, channels).astype(np.float32).mean(axis=1)
            if name.startswith("s16"):
                samples /= 32768.0
            return samples.astype(np.float32)
        if self._resampler is None:
            self._resampler = AudioResampler(
                format="s16", layout="mono", rate=SAMPLE_RATE
            )
        parts = [
            out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
            for out in self._resampler.resample(frame)
        ]
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(parts).astype(np.float32)


class _Recording:
    """The last ``seconds`` of mono float32 audio; written on the loop, read anywhere."""

    def __init__(self, seconds: float) -> None:
        self._limit = int(seconds * SAMPLE_RATE)
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._total = 0
        self._lock = threading.Lock()

    def append(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        with self._lock:
            self._chunks.append(samples)
            self._total += samples.size
            while self._chunks and self._total - self._chunks[0].size >= self._limit:
                self._total -= self._chunks.popleft().size

    def samples(self) -> np.ndarray:
        with self._lock:
            chunks = list(self._chunks)
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks)[-self._limit :].astype(np.float32, copy=False)


class EchoTrack(MediaStreamTrack):
    """An audio track that sends back what its user receives, paced at 20 ms a frame.

    Frames come from a bounded queue that the user's reader fills (the oldest go past
    ``ECHO_QUEUE_FRAMES``); when it is empty, the track sends 20 ms of silence. Every
    frame goes out as s16 mono at 48 kHz with a continuous pts.
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: collections.deque[np.ndarray] = collections.deque(
            maxlen=ECHO_QUEUE_FRAMES
        )
        self._start: float | None = None
        self._pts = 0
        self._last_samples = 0

    def push(self, pcm: np.ndarray) -> None:
        """Queue int16 mono samples at 48 kHz to be sent back (call on the loop)."""
        if pcm.size:
            self._queue.append(pcm)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._pts += self._last_samples
            wait = self._start + self._pts / SAMPLE_RATE - now
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -MAX_LAG:
                self._start = now - self._pts / SAMPLE_RATE
        if self.readyState != "live":
            raise MediaStreamError
        pcm = self._queue.popleft() if self._queue else _silence()
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._last_samples = pcm.size
        return frame


# ------------------------------------------------------------------ the users


class WhatsAppUser:
    """A WhatsApp user on one call: an aiortc peer that echoes what it hears.

    Create it on the fake's event loop. ``close()`` may be called from any other
    thread; on the loop, await ``aclose()``.
    """

    def __init__(self, call_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.call_id = call_id
        self.closed = False
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.echo = EchoTrack()
        self._loop = loop
        self._recording = _Recording(HEARD_SECONDS)
        self._readers: set[asyncio.Task[None]] = set()
        self.pc.on("track", self._on_track)

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.pc.connectionState
        return f"<WhatsAppUser {self.call_id} {state}>"

    @property
    def connected(self) -> bool:
        """ICE and DTLS are connected (and the peer is not closed)."""
        return not self.closed and self.pc.connectionState == "connected"

    def heard(self) -> np.ndarray:
        """What the user heard: float32 mono at 48 kHz, at most the last 60 s."""
        return self._recording.samples()

    def wait_connected(self, timeout: float = 10) -> None:
        """Block (in a thread other than the loop) until ``connected``."""
        deadline = time.monotonic() + timeout
        while not self.connected:
            if self.closed or time.monotonic() > deadline:
                raise TimeoutError(f"{self!r} did not connect within {timeout} s")
            time.sleep(0.02)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close the peer connection from a thread other than the loop's; wait for it."""
        if self.closed:
            return
        if _running_loop() is self._loop:
            raise RuntimeError("on the fake's loop, await WhatsAppUser.aclose()")
        asyncio.run_coroutine_threadsafe(self.aclose(), self._loop).result(timeout)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.echo.stop()
        try:
            await self.pc.close()
        finally:
            for task in list(self._readers):
                task.cancel()

    # Signalling (on the loop).

    async def make_offer(self) -> str:
        self.pc.addTrack(self.echo)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer_offer(self, offer: str, *, reachable: bool = True) -> str:
        """Take the business's offer and answer it.

        Unreachable: the answer is created but never set, so this peer neither sends
        nor answers connectivity checks, and its candidates point to a closed port.
        """
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=offer, type="offer")
        )
        self.pc.addTrack(self.echo)
        answer = await self.pc.createAnswer()
        if not reachable:
            return unreachable_sdp(answer.sdp)
        await self.pc.setLocalDescription(answer)
        return self.pc.localDescription.sdp

    async def apply_answer(self, answer: str) -> None:
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer, type="answer")
        )

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        task = self._loop.create_task(self._read(track))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def _read(self, track: MediaStreamTrack) -> None:
        mono = _Mono48k()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, AudioFrame):
                continue
            samples = mono.convert(frame)
            self._recording.append(samples)
            pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
            self.echo.push(pcm)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+) (\d+)( .*)$")


def unreachable_sdp(sdp: str) -> str:
    """Point every candidate (and the c=/m= lines) of ``sdp`` to 127.0.0.1 port 9.

    A media section without any candidate gets one such host candidate; each media
    section ends with ``a=end-of-candidates``.
    """
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if not line or line == "a=end-of-candidates":
            continue
        if line.startswith("m="):
            parts = line.split(" ")
            parts[1] = str(UNREACHABLE_PORT)
            sections.append([" ".join(parts)])
            continue
        if line.startswith("c="):
            line = f"c=IN IP4 {UNREACHABLE_HOST}"
        elif line.startswith("a=rtcp:"):
            line = f"a=rtcp:{UNREACHABLE_PORT} IN IP4 {UNREACHABLE_HOST}"
        elif match := _CANDIDATE.match(line):
            line = f"{match[1]}{UNREACHABLE_HOST} {UNREACHABLE_PORT}{match[4]}"
        sections[-1].append(line)
    lines = list(sections[0])
    for section in sections[1:]:
        if not any(line.startswith("a=candidate:") for line in section):
            section.append(
                f"a=candidate:1 1 udp 2130706431 {UNREACHABLE_HOST} "
                f"{UNREACHABLE_PORT} typ host"
            )
        lines.extend([*section, "a=end-of-candidates"])
    return "\r\n".join(lines) + "\r\n"


# ------------------------------------------------------------------ the fake's parts


class GraphError(Exception):
    """An error reply of the Graph API."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.status = status
        self.error = error


def _trace_id() -> str:
    return "A" + secrets.token_urlsafe(16)


def _invalid_parameter(details: str) -> GraphError:
    return GraphError(
        400,
        {
            "message": "(#100) Invalid parameter",
            "type": "OAuthException",
            "code": 100,
            "error_data": {"messaging_product": "whatsapp", "details": details},
        },
    )


def _unknown_object(object_id: str) -> GraphError:
    return GraphError(
        400,
        {
            "message": (
                f"Unsupported get request. Object with ID '{object_id}' does not "
                "exist, cannot be loaded due to missing permissions, or does not "
                "support this operation."
            ),
            "type": "GraphMethodException",
            "code": 100,
            "error_subcode": 33,
        },
    )


def _invalid_token() -> GraphError:
    return GraphError(
        401,
        {
            "message": "Invalid OAuth access token - Cannot parse access token",
            "type": "OAuthException",
            "code": 190,
        },
    )


def _no_permission() -> GraphError:
    return GraphError(
        400,
        {
            "message": "(#138006) Lack of call request permission",
            "type": "OAuthException",
            "code": 138006,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "No approved call request permission from the recipient",
            },
        },
    )


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def _now() -> str:
    return str(int(time.time()))


def _new_call_id() -> str:
    token = base64.urlsafe_b64encode(secrets.token_bytes(30)).decode().rstrip("=")
    return f"wacid.{token}"


def _check_sdp(sdp: object) -> str:
    """The SDP if it parses and has an audio section with ICE and DTLS, else 400."""
    if not isinstance(sdp, str) or not sdp.strip():
        raise _invalid_parameter("Invalid SDP")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:
        raise _invalid_parameter("Invalid SDP") from exc
    audio = [media for media in parsed.media if media.kind == "audio"]
    if not audio or any(media.ice is None or media.dtls is None for media in audio):
        raise _invalid_parameter("Invalid SDP")
    if "a=ice-ufrag:" not in sdp or "a=fingerprint:" not in sdp:
        raise _invalid_parameter("Invalid SDP")
    return sdp


def _session_sdp(body: dict[str, Any], sdp_type: str) -> str:
    session = body.get("session")
    if not isinstance(session, dict):
        raise _invalid_parameter("session is required")
    if session.get("sdp_type") != sdp_type:
        raise _invalid_parameter(f"session.sdp_type must be {sdp_type}")
    if not session.get("sdp"):
        raise _invalid_parameter("session.sdp is required")
    return _check_sdp(session.get("sdp"))


@dataclass
class _Number:
    phone_number_id: str
    access_token: str
    app_secret: str
    display_phone_number: str
    webhook_url: str
    waba_id: str


class _Lane:
    """One call's worker: runs its jobs (webhooks, scripted steps) one after another."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    @property
    def idle(self) -> bool:
        return self._jobs.unfinished_tasks == 0

    def stop(self, timeout: float) -> None:
        self._jobs.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                job()
            except Exception:
                logger.exception("fake WhatsApp: a job of %s failed", self._thread.name)
            finally:
                self._jobs.task_done()


@dataclass
class _Call:
    call_id: str
    number: _Number
    user_number: str
    direction: str  # USER_INITIATED | BUSINESS_INITIATED
    lane: _Lane
    created_at: float = field(default_factory=time.time)
    user: WhatsAppUser | None = None
    accepted_at: float | None = None
    ended: bool = False
    answer_applied: bool = False
    answer_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def parties(self) -> tuple[str, str]:
        """(from, to) of this call's webhooks."""
        business = _digits(self.number.display_phone_number)
        if self.direction == "USER_INITIATED":
            return self.user_number, business
        return business, self.user_number


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    server_version = "FakeGraph"

    def __init__(self, *args: Any, fake: FakeGraph, **kwargs: Any) -> None:
        self.fake = fake
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.fake._handle(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake Graph API: " + format, *args)

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header(
                "WWW-Authenticate",
                'OAuth "Facebook Platform" "invalid_token" '
                '"Invalid OAuth access token - Cannot parse access token"',
            )
        self.end_headers()
        self.wfile.write(body)


# ------------------------------------------------------------------ the fake


class FakeGraph:
    """Meta's Graph API for WhatsApp calling, on 127.0.0.1, with users behind it.

    Use it as a context manager: ``__enter__`` starts the HTTP server and the peers'
    event loop; ``__exit__`` closes every peer and stops both.
    """

    def __init__(self) -> None:
        use_loopback_ice()
        self.base_url = ""
        self.actions: list[dict[str, Any]] = []
        # Every request received: method, path (with query) and Authorization.
        self.requests: list[dict[str, str]] = []
        self.users: dict[str, WhatsAppUser] = {}
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._numbers: dict[str, _Number] = {}
        self._calls: dict[str, _Call] = {}
        self._call_actions: list[tuple[str, str, dict[str, Any]]] = []
        self._closing = threading.Event()
        self._http = httpx.Client(timeout=WEBHOOK_TIMEOUT)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._run_loop, name="fake-whatsapp-peers", daemon=True
        )
        self._server: ThreadingHTTPServer | None = None
        self._server_thread: threading.Thread | None = None

    # Life.

    def __enter__(self) -> FakeGraph:
        self._loop_thread.start()

        def handler(*args: Any, **kwargs: Any) -> _Handler:
            return _Handler(*args, fake=self, **kwargs)

        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._server_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="fake-graph-http",
            daemon=True,
        )
        self._server_thread.start()
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}/{GRAPH_VERSION}"
        logger.info("fake Graph API at %s", self.base_url)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._server_thread is not None:
            self._server_thread.join(CLOSE_TIMEOUT)
        with self._lock:
            lanes = [call.lane for call in self._calls.values()]
        for lane in lanes:
            lane.stop(timeout=1.0)
        with self._lock:
            users = list(self.users.values())
        if self._loop.is_running():
            for step in (self._close_users(users), self._shutdown_loop()):
                try:
                    self._run(step, timeout=CLOSE_TIMEOUT * 2)
                except Exception:
                    logger.exception("fake WhatsApp: stopping the peers failed")
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._loop_thread.is_alive():
            self._loop_thread.join(CLOSE_TIMEOUT)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
        self._http.close()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _close_users(self, users: list[WhatsAppUser]) -> None:
        results = await asyncio.gather(
            *(user.aclose() for user in users), return_exceptions=True
        )
        for user, result in zip(users, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("fake WhatsApp: closing %r: %r", user, result)

    async def _shutdown_loop(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._loop.shutdown_default_executor()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = LOOP_TIMEOUT) -> T:
        """Run ``coro`` on the peers' loop and wait for its result."""
        if _running_loop() is self._loop:
            coro.close()
            raise RuntimeError("FakeGraph._run called on the peers' loop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # Numbers.

    def add_number(
        self,
        phone_number_id: str,
        *,
        access_token: str,
        app_secret: str,
        display_phone_number: str,
        webhook_url: str,
    ) -> None:
        waba_id = "1" + "".join(str(secrets.randbelow(10)) for _ in range(14))
        with self._lock:
            self._numbers[phone_number_id] = _Number(
                phone_number_id=phone_number_id,
                access_token=access_token,
                app_secret=app_secret,
                display_phone_number=display_phone_number,
                webhook_url=webhook_url,
                waba_id=waba_id,
            )

    def set_webhook_url(self, phone_number_id: str, webhook_url: str) -> None:
        with self._lock:
            self._numbers[phone_number_id].webhook_url = webhook_url

    # What the business did.

    def actions_of(self, call_id: str) -> list[str]:
        """The ``action`` values the business POSTed (and the fake took) for a call."""
        with self._lock:
            return [action for cid, action, _ in self._call_actions if cid == call_id]

    def wait_for_action(
        self, call_id: str, action: str, timeout: float = 10
    ) -> dict[str, Any]:
        """Block until the business POSTed ``action`` for ``call_id``; its body."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for cid, name, body in self._call_actions:
                    if cid == call_id and name == action:
                        return body
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [
                        name for cid, name, _ in self._call_actions if cid == call_id
                    ]
                    raise TimeoutError(
                        f"no {action!r} for {call_id} within {timeout} s (saw {seen})"
                    )
                self._changed.wait(remaining)

    def wait_idle(self, timeout: float = 10) -> None:
        """Block until every call's pending webhooks and scripted steps are done."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                busy = [cid for cid, call in self._calls.items() if not call.lane.idle]
            if not busy:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"calls still busy after {timeout} s: {busy}")
            time.sleep(0.02)

    # Users calling the business.

    def call_in(
        self, phone_number_id: str, from_number: str, *, gives_up: bool = False
    ) -> str:
        """A WhatsApp user calls the business; the new call id.

        The user's offer is ready when this returns, and its ``connect`` webhook is
        queued (posted from the call's own thread, so the caller may serve the webhook
        on its own event loop). ``gives_up``: the user hangs up 0.5 s after that
        webhook, before any answer (terminate ``FAILED``).
        """
        with self._lock:
            number = self._numbers[phone_number_id]
        call = self._new_call(number, _digits(from_number), "USER_INITIATED")
        user = self._run(self._new_user(call.call_id))
        with self._lock:
            call.user = user
            self.users[call.call_id] = user
        offer = self._run(user.make_offer())
        call.lane.put(lambda: self._post_connect(call, "offer", offer))
        if gives_up:
            call.lane.put(lambda: self._give_up(call))
        return call.call_id

    def user_hangs_up(self, call_id: str) -> None:
        """The user ends the call: close the peer, then a terminate ``COMPLETED``.

        Returns at once; the webhook follows from the call's thread.
        """
        with self._lock:
            call = self._calls[call_id]
        if not self._end(call):
            logger.info("fake WhatsApp: %s already ended", call_id)
            return
        call.lane.put(lambda: self._finish(call, "COMPLETED"))

    # Webhooks.

    def post_webhook(
        self,
        phone_number_id: str,
        value: dict[str, Any],
        *,
        field: str = "calls",
        secret: str | None = None,
        raw: bytes | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST ``value`` in Meta's envelope, signed, to the number's webhook URL."""
        with self._lock:
            number = self._numbers[phone_number_id]
            url = number.webhook_url
        if raw is None:
            envelope = {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": number.waba_id,
                        "changes": [{"field": field, "value": value}],
                    }
                ],
            }
            body = json.dumps(envelope).encode()
        else:
            body = raw
        if signature is None:
            key = (number.app_secret if secret is None else secret).encode()
            signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature,
            "User-Agent": "facebookexternalua",
        }
        response = self._http.post(url, content=body, headers=headers)
        with self._lock:
            self.deliveries.append((body, dict(headers)))
        logger.debug(
            "fake WhatsApp: webhook to %s: %s %s", url, response.status_code, body[:200]
        )
        return response

    def calls_value(self, call_id: str, item: dict[str, Any]) -> dict[str, Any]:
        """A ``calls`` webhook value about a known call, with ``item`` as its call."""
        with self._lock:
            call = self._calls[call_id]
        return {
            "messaging_product": "whatsapp",
            "metadata": self._metadata(call.number),
            "contacts": [{"profile": {"name": USER_NAME}, "wa_id": call.user_number}],
            "calls": [item],
        }

    def terminate_value(
        self,
        call_id: str,
        status: str = "FAILED",
        *,
        errors: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A terminate webhook value for a known call (``errors`` for FAILED ones)."""
        with self._lock:
            call = self._calls[call_id]
        return self.calls_value(call_id, self._terminate_item(call, status, errors))

    def status_value(self, call_id: str, status: str) -> dict[str, Any]:
        """A ``statuses`` webhook value (RINGING, ACCEPTED, REJECTED) for a known call."""
        with self._lock:
            call = self._calls[call_id]
        return {
            "messaging_product": "whatsapp",
            "metadata": self._metadata(call.number),
            "statuses": [
                {
                    "id": call.call_id,
                    "timestamp": _now(),
                    "type": "call",
                    "status": status,
                    "recipient_id": call.user_number,
                }
            ],
        }

    @staticmethod
    def _metadata(number: _Number) -> dict[str, str]:
        return {
            "display_phone_number": _digits(number.display_phone_number),
            "phone_number_id": number.phone_number_id,
        }

    def _terminate_item(
        self, call: _Call, status: str, errors: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        caller, callee = call.parties
        item: dict[str, Any] = {
            "id": call.call_id,
            "from": caller,
            "to": callee,
            "event": "terminate",
            "timestamp": _now(),
            "direction": call.direction,
            "status": status,
        }
        if status == "COMPLETED":
            end = time.time()
            start = call.accepted_at or call.created_at
            item["start_time"] = str(int(start))
            item["end_time"] = str(int(end))
            item["duration"] = max(0, int(end - start))
        if errors is not None:
            item["errors"] = errors
        return item

    def _deliver(self, call: _Call, value: dict[str, Any]) -> None:
        """Post one of the call's webhooks (from its lane); failures are logged."""
        if self._closing.is_set():
            return
        try:
            response = self.post_webhook(call.number.phone_number_id, value)
        except httpx.HTTPError as exc:
            logger.warning(
                "fake WhatsApp: webhook for %s failed: %r", call.call_id, exc
            )
            return
        if response.status_code >= 300:
            logger.warning(
                "fake WhatsApp: webhook for %s got %s: %s",
                call.call_id,
                response.status_code,
                response.text[:200],
            )

    def _post_connect(self, call: _Call, sdp_type: str, sdp: str) -> None:
        caller, callee = call.parties
        item = {
            "id": call.call_id,
            "from": caller,
            "to": callee,
            "event": "connect",
            "timestamp": _now(),
            "direction": call.direction,
            "session": {"sdp_type": sdp_type, "sdp": sdp},
        }
        self._deliver(call, self.calls_value(call.call_id, item))

    def _post_status(self, call: _Call, status: str) -> None:
        self._deliver(call, self.status_value(call.call_id, status))

    # Calls.

    def _new_call(self, number: _Number, user_number: str, direction: str) -> _Call:
        call_id = _new_call_id()
        call = _Call(
            call_id=call_id,
            number=number,
            user_number=user_number,
            direction=direction,
            lane=_Lane(f"fake-whatsapp-{call_id[6:14]}"),
        )
        with self._lock:
            self._calls[call_id] = call
        return call

    async def _new_user(self, call_id: str) -> WhatsAppUser:
        return WhatsAppUser(call_id, self._loop)

    def _end(self, call: _Call) -> bool:
        """Mark the call ended; False when it already was."""
        with self._lock:
            if call.ended:
                return False
            call.ended = True
            return True

    def _ended(self, call: _Call) -> bool:
        with self._lock:
            return call.ended or self._closing.is_set()

    def _pause(self, call: _Call, seconds: float) -> bool:
        """Wait ``seconds`` unless the call ends first; True when it is still on."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._ended(call):
                return False
            time.sleep(0.02)
        return not self._ended(call)

    def _close_user(self, call: _Call) -> None:
        user = call.user
        if user is None or user.closed or not self._loop.is_running():
            return
        try:
            self._run(user.aclose(), timeout=CLOSE_TIMEOUT)
        except Exception:
            logger.exception("fake WhatsApp: closing %r failed", user)

    def _finish(self, call: _Call, status: str) -> None:
        """Close the user's peer, then post the terminate webhook (lane job)."""
        self._close_user(call)
        self._deliver(
            call, self.calls_value(call.call_id, self._terminate_item(call, status))
        )

    def _give_up(self, call: _Call) -> None:
        if not self._pause(call, GIVE_UP_AFTER) or not self._end(call):
            return
        self._finish(call, "COMPLETED" if call.accepted_at is not None else "FAILED")

    def _business_call(self, call: _Call, offer: str) -> None:
        """The scripted user of a business-initiated call (lane job)."""
        self._post_status(call, "RINGING")
        to = call.user_number
        if to == NO_ANSWER_USER:
            if self._pause(call, NO_ANSWER_AFTER) and self._end(call):
                self._finish(call, "FAILED")
            return
        if to == DECLINING_USER:
            if self._ended(call) or not self._end(call):
                return
            self._post_status(call, "REJECTED")
            self._finish(call, "REJECTED")
            return
        if self._ended(call):
            return
        user = self._run(self._new_user(call.call_id))
        with self._lock:
            call.user = user
            self.users[call.call_id] = user
            call.answer_applied = True
        try:
            answer = self._run(
                user.answer_offer(offer, reachable=to != UNREACHABLE_USER)
            )
        except Exception:
            logger.exception("fake WhatsApp: %s could not answer", call.call_id)
            if self._end(call):
                self._finish(call, "FAILED")
            return
        if self._ended(call):
            return
        self._post_connect(call, "answer", answer)
        if to == UNREACHABLE_USER or self._ended(call):
            return
        call.accepted_at = time.time()
        self._post_status(call, "ACCEPTED")
        if (
            to == HANGING_UP_USER
            and self._pause(call, HANG_UP_AFTER)
            and self._end(call)
        ):
            self._finish(call, "COMPLETED")

    # HTTP.

    def _handle(self, handler: _Handler, method: str) -> None:
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "path": handler.path,
                    "authorization": handler.headers.get("Authorization", ""),
                }
            )
        try:
            payload = self._route(handler, method)
        except GraphError as exc:
            handler.reply(
                exc.status, {"error": exc.error | {"fbtrace_id": _trace_id()}}
            )
        except Exception:
            logger.exception("fake Graph API: %s %s failed", method, handler.path)
            handler.reply(
                500,
                {
                    "error": {
                        "message": "An unexpected error has occurred.",
                        "type": "OAuthException",
                        "code": 2,
                        "fbtrace_id": _trace_id(),
                    }
                },
            )
        else:
            handler.reply(200, payload)

    def _route(self, handler: _Handler, method: str) -> dict[str, Any]:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = [part for part in urlsplit(handler.path).path.split("/") if part]
        if not parts or parts[0] != GRAPH_VERSION or len(parts) not in (2, 3):
            raise GraphError(
                400,
                {
                    "message": f"Unknown path components: {handler.path}",
                    "type": "OAuthException",
                    "code": 2500,
                },
            )
        phone_number_id = parts[1]
        authorization = handler.headers.get("Authorization", "")
        body: dict[str, Any] = {}
        is_calls = len(parts) == 3 and parts[2] == "calls" and method == "POST"
        if is_calls:
            try:
                parsed = json.loads(raw) if raw else {}
            except ValueError:
                parsed = None
            body = (
                parsed
                if isinstance(parsed, dict)
                else {"_unparsed": raw.decode(errors="replace")}
            )
            with self._changed:
                self.actions.append(
                    {
                        "phone_number_id": phone_number_id,
                        "body": body,
                        "authorization": authorization,
                    }
                )
                self._changed.notify_all()
        with self._lock:
            number = self._numbers.get(phone_number_id)
        if number is None:
            raise _unknown_object(phone_number_id)
        if not hmac.compare_digest(authorization, f"Bearer {number.access_token}"):
            raise _invalid_token()
        if method == "GET" and len(parts) == 2:
            return {
                "verified_name": VERIFIED_NAME,
                "display_phone_number": number.display_phone_number,
                "quality_rating": "GREEN",
                "id": phone_number_id,
            }
        if not is_calls:
            raise _unknown_object(phone_number_id)
        if "_unparsed" in body:
            raise _invalid_parameter("The request body is not a JSON object")
        return self._action(number, body)

    def _record(self, call_id: str, action: str, body: dict[str, Any]) -> None:
        with self._changed:
            self._call_actions.append((call_id, action, body))
            self._changed.notify_all()

    def _action(self, number: _Number, body: dict[str, Any]) -> dict[str, Any]:
        action = body.get("action")
        call_id = body.get("call_id")
        if isinstance(call_id, str) and action != "connect":
            self._record(call_id, str(action), body)
        if body.get("messaging_product") != "whatsapp":
            raise _invalid_parameter("messaging_product must be whatsapp")
        if action == "connect":
            return self._connect(number, body)
        if action not in ("pre_accept", "accept", "reject", "terminate"):
            raise _invalid_parameter(f"Unknown action {action!r}")
        with self._lock:
            call = self._calls.get(call_id) if isinstance(call_id, str) else None
        if call is None or call.number is not number:
            raise _invalid_parameter(f"Unknown call_id {call_id!r}")
        if action in ("pre_accept", "accept"):
            self._accept(call, body, final=action == "accept")
        elif self._end(call):
            status = "REJECTED" if action == "reject" else "COMPLETED"
            call.lane.put(lambda: self._finish(call, status))
        return {"messaging_product": "whatsapp", "success": True}

    def _connect(self, number: _Number, body: dict[str, Any]) -> dict[str, Any]:
        to = body.get("to")
        if not isinstance(to, str) or not _digits(to):
            raise _invalid_parameter("to is required")
        offer = _session_sdp(body, "offer")
        to = _digits(to)
        if to == NO_PERMISSION_USER:
            raise _no_permission()
        call = self._new_call(number, to, "BUSINESS_INITIATED")
        self._record(call.call_id, "connect", body)
        call.lane.put(lambda: self._business_call(call, offer))
        return {"messaging_product": "whatsapp", "calls": [{"id": call.call_id}]}

    def _accept(self, call: _Call, body: dict[str, Any], *, final: bool) -> None:
        answer = _session_sdp(body, "answer")
        if call.direction != "USER_INITIATED":
            raise _invalid_parameter("Only user-initiated calls can be accepted")
        if self._ended(call):
            raise _invalid_parameter("The call has already ended")
        with call.answer_lock:
            if not call.answer_applied:
                user = call.user
                if user is None:
                    raise _invalid_parameter(f"Unknown call_id {call.call_id!r}")
                try:
                    self._run(user.apply_answer(answer), timeout=LOOP_TIMEOUT)
                except Exception as exc:
                    logger.info(
                        "fake WhatsApp: answer for %s refused: %r", call.call_id, exc
                    )
                    raise _invalid_parameter("Invalid SDP") from exc
                call.answer_applied = True
        if final and call.accepted_at is None:
            call.accepted_at = time.time()


__all__ = [
    "DECLINING_USER",
    "ECHO_USER",
    "GRAPH_VERSION",
    "HANGING_UP_USER",
    "NO_ANSWER_USER",
    "NO_PERMISSION_USER",
    "UNREACHABLE_USER",
    "EchoTrack",
    "FakeGraph",
    "GraphError",
    "WhatsAppUser",
    "unreachable_sdp",
    "use_loopback_ice",
]
