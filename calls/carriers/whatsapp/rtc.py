"""WebRTC for WhatsApp calls (aiortc), off the media clock's loop.

Every WebRTC connection lives on one of a few RTC loops, each an asyncio loop in its own
thread (``WHATSAPP_RTC_THREADS``): ICE, DTLS, SRTP and the Opus codec never run on the
home loop, so the 20 ms tick never waits on them. A ``Peer`` meets the tick through two
short queues of 20 ms frames at 16 kHz that only ever append and pop (atomic under the
GIL): the tick's frame for the peer goes into ``outbound``, which the peer's own track
paces out at 20 ms (aiortc's Opus encoder resamples it to 48 kHz as it encodes); what the
peer sends is decoded at 48 kHz, mixed to mono, brought to 16 kHz by a streaming soxr
resampler and cut into frames in ``inbound``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import numpy as np
from django.conf import settings

from audio import FRAME_SAMPLES, SAMPLE_RATE
from audio.resample import SteadyResampler, StreamResampler

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Frames waiting on either side are kept under this (200 ms): a backlog past it (a
# stalled loop, a burst) is dropped from the front so latency stays bounded.
MAX_QUEUED_FRAMES = 10
OPUS_RATE = 48_000
# Speech in Opus at 16 kHz: 32 kbit/s is transparent for a voice call.
OPUS_BITRATE = 32_000
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


def configure_ice() -> None:
    """Offer only ``WHATSAPP_ICE_ADDRESSES`` as host candidates, when it is set.

    aioice gathers every interface's address except loopback; a server with several
    interfaces (or a test on loopback) names the ones its peers can reach.
    """
    addresses = list(settings.WHATSAPP_ICE_ADDRESSES)
    if not addresses:
        return
    import aioice.ice

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            address
            for address in addresses
            if (":" in address and use_ipv6) or (":" not in address and use_ipv4)
        ]

    aioice.ice.get_host_addresses = host_addresses


def check_offer(sdp: str) -> str | None:
    """What makes an offer unusable (``None``: it has audio we can answer with Opus)."""
    from aiortc.sdp import SessionDescription

    if not sdp.strip():
        return "the offer has no SDP"
    try:
        description = SessionDescription.parse(sdp)
    except Exception:
        return "the offer's SDP does not parse"
    for media in description.media:
        if media.kind == "audio" and media.port:
            if any(
                codec.mimeType.lower() == "audio/opus" for codec in media.rtp.codecs
            ):
                return None
            return "the offer has no Opus audio"
    return "the offer has no audio"


def rtc_configuration() -> Any:
    from aiortc import RTCConfiguration, RTCIceServer

    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=url) for url in settings.WHATSAPP_ICE_SERVERS]
    )


class RtcLoops:
    """The process's RTC loops; legs are spread over them in turn."""

    def __init__(self) -> None:
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._threads: list[threading.Thread] = []
        self._next = 0
        self._lock = threading.Lock()

    def _start(self) -> None:
        configure_ice()
        for index in range(settings.WHATSAPP_RTC_THREADS):
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run(
                loop: asyncio.AbstractEventLoop = loop,
                ready: threading.Event = ready,
            ) -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name=f"whatsapp-rtc-{index}")
            thread.daemon = True
            thread.start()
            ready.wait(5)
            self._loops.append(loop)
            self._threads.append(thread)

    def pick(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if not self._loops:
                self._start()
            loop = self._loops[self._next % len(self._loops)]
            self._next += 1
            return loop

    @property
    def running(self) -> int:
        return len(self._loops)

    def stop(self) -> None:
        with self._lock:
            loops, self._loops = self._loops, []
            threads, self._threads = self._threads, []
        for loop in loops:
            loop.call_soon_threadsafe(loop.stop)
        for thread in threads:
            thread.join(timeout=5)


loops = RtcLoops()


async def on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on an RTC loop and wait for it from the caller's loop."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    return await asyncio.wrap_future(future)


def _outbound_track(peer: Peer) -> Any:
    from aiortc import MediaStreamTrack
    from av import AudioFrame, CodecContext

    class OutboundTrack(MediaStreamTrack):
        """The tick's frames, paced out at 20 ms (silence when none is waiting) and
        encoded here: Opus takes 16 kHz mono as it is, so there is no resampling, and
        aiortc only packetises what it is handed (no encoder thread hop per frame)."""

        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self._start = 0.0
            self._pts = 0
            self._time_base = fractions.Fraction(1, SAMPLE_RATE)
            codec: Any = CodecContext.create("libopus", "w")
            codec.format = "s16"
            codec.layout = "mono"
            codec.sample_rate = SAMPLE_RATE
            codec.bit_rate = OPUS_BITRATE
            codec.time_base = self._time_base
            codec.options = {"application": "voip", "frame_duration": "20"}
            self._codec = codec
            self._silence = np.zeros((1, FRAME_SAMPLES), dtype=np.int16)

        async def recv(self) -> Any:
            if self.readyState != "live":
                from aiortc.mediastreams import MediaStreamError

                raise MediaStreamError
            while True:
                if self._start:
                    self._pts += FRAME_SAMPLES
                    wait = self._start + self._pts / SAMPLE_RATE - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    elif wait < -0.2:
                        # The loop stalled: carry on from now rather than burst.
                        self._start = time.monotonic() - self._pts / SAMPLE_RATE
                else:
                    self._start = time.monotonic()
                queue = peer.outbound
                samples = queue.popleft() if queue else None
                pcm = self._silence if samples is None else samples.reshape(1, -1)
                frame = AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = self._pts
                frame.time_base = self._time_base
                for packet in self._codec.encode(frame):
                    # Our own clock, not the encoder's (whose first pts is negative).
                    packet.pts = self._pts
                    packet.time_base = self._time_base
                    return packet

    return OutboundTrack()


class Peer:
    """One call's WebRTC connection; its coroutines run on ``loop`` (an RTC loop).

    ``on_state(state)`` is called on that loop with aiortc's connection state
    (``connecting``, ``connected``, ``failed``, ``closed``).
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_state: Callable[[str], None]
    ) -> None:
        self.loop = loop
        self.on_state = on_state
        # 16 kHz int16 frames for the peer, and float32 frames from it.
        self.outbound: deque[np.ndarray] = deque()
        self.inbound: deque[np.ndarray] = deque()
        self.dropped_frames = 0
        self._pc: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    def _build(self) -> Any:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection(rtc_configuration())
        pc.addTrack(_outbound_track(self))

        @pc.on("connectionstatechange")
        def _changed() -> None:
            self.on_state(str(pc.connectionState))

        @pc.on("track")
        def _track(track: Any) -> None:
            if track.kind == "audio" and self._reader is None:
                self._reader = asyncio.ensure_future(self._read(track))

        self._pc = pc
        return pc

    # ------------------------------------------------------------ signalling (RTC loop)
    async def offer(self) -> str:
        """Our offer (all candidates gathered: no trickle, like Meta's)."""
        pc = self._build()
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)

    async def answer_to(self, offer: str) -> str:
        """Take the peer's offer and return our answer."""
        from aiortc import RTCSessionDescription

        pc = self._build()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def apply_answer(self, answer: str) -> None:
        from aiortc import RTCSessionDescription

        await self._pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer, type="answer")
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pc is not None:
            with contextlib.suppress(Exception):
                await self._pc.close()

    # ------------------------------------------------------------ media in (RTC loop)
    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        resampler: SteadyResampler | StreamResampler | None = None
        rate = 0
        pending = np.zeros(0, dtype=np.float32)
        inbound = self.inbound
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            channels = len(frame.layout.channels)
            data = frame.to_ndarray().reshape(-1)
            if channels > 1:
                # WhatsApp sends mono voice: the decoder's channels are the same.
                data = data[::channels]
            if data.dtype == np.int16:
                samples = data.astype(np.float32)
                samples *= 1.0 / 32768.0
            else:
                samples = data.astype(np.float32)
            if resampler is None or frame.sample_rate != rate:
                rate = int(frame.sample_rate or OPUS_RATE)
                # In step with the decoder's 20 ms frames (soxr's stream filter hands
                # 48 → 16 kHz over in uneven bursts); another rate goes through soxr.
                try:
                    resampler = SteadyResampler(rate, SAMPLE_RATE)
                except ValueError:
                    resampler = StreamResampler(rate, SAMPLE_RATE)
            out = resampler.process(samples)
            pending = np.concatenate((pending, out)) if len(pending) else out
            while len(pending) >= FRAME_SAMPLES:
                inbound.append(np.array(pending[:FRAME_SAMPLES], dtype=np.float32))
                pending = pending[FRAME_SAMPLES:]
            while len(inbound) > MAX_QUEUED_FRAMES:
                inbound.popleft()
                self.dropped_frames += 1
