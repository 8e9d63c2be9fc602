"""Pipecat on a Switchboard call: a frame serializer and a client transport.

Switchboard is the server: a bot connects to a call's live media socket as a client::

    from switchboard_sdk.pipecat import SwitchboardTransport

    call = client.calls.place(session_id, to="+15550000001")
    transport = SwitchboardTransport.for_call(client, call)  # at the call's mediaUrl
    pipeline = Pipeline([transport.input(), ..., transport.output()])

``SwitchboardFrameSerializer`` speaks the socket's protocol (Float32LE PCM at 16 kHz
both ways, JSON messages): the peer's audio becomes ``InputAudioRawFrame``\\ s of
16-bit PCM at the pipeline's input rate, output audio at any rate goes out as Float32
at 16 kHz (resampled with Pipecat's stream resampler), an ``InterruptionFrame``
becomes ``clear``, and the server's ``buffer`` reports hold the output back while the
call's playout buffer is full (``serialize`` waits), so a fast TTS never overflows it.
``{"type": "mark", "name": …}`` in an ``OutputTransportMessageFrame`` is sent in order
with the audio; marks played (``playedMs``) or cleared, and ``ready``, ``call_state``,
``ended`` and ``error``, come back as ``InputTransportMessageFrame``\\ s with the
server's message; DTMF as ``InputDTMFFrame``.

``SwitchboardTransport`` is Pipecat's ``WebsocketClientTransport`` set up for that:
bearer auth, no WAV headers, the serializer, and interruptions sent to the server
(the stock client transport does not serialize them).

Needs ``pip install 'switchboard-sdk[pipecat]'``; nothing else in the SDK imports this.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import numpy as np
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import (
    AudioRawFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.transports.websocket.client import (
    WebsocketClientInputTransport,
    WebsocketClientOutputTransport,
    WebsocketClientParams,
    WebsocketClientTransport,
)

from switchboard_sdk._async import AsyncSwitchboard
from switchboard_sdk._http import media_socket_url
from switchboard_sdk._sync import Switchboard
from switchboard_sdk.audio import SAMPLE_RATE, duration_ms
from switchboard_sdk.media import Backpressure, BufferStatus, parse_message

# Messages of the server that reach the pipeline as InputTransportMessageFrames.
FORWARDED = {"ready", "call_state", "mark", "ended", "error"}
# What a bot may send in an OutputTransportMessageFrame.
CLIENT_MESSAGES = {"mark", "clear"}
# How far ahead of real time SwitchboardTransport keeps the call's playout buffer.
PLAYOUT_LEAD_S = 0.1


def _strip_wav_header(audio: bytes) -> bytes:
    """The PCM of a WAV-wrapped frame (a transport left with ``add_wav_header``)."""
    if audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
        return audio
    index = audio.find(b"data", 12)
    return audio[index + 8 :] if index >= 0 else audio


class SwitchboardFrameSerializer(FrameSerializer):
    """Pipecat frames ⇄ Switchboard's live media socket (see the module docstring)."""

    class InputParams(FrameSerializer.InputParams):
        """``sample_rate`` overrides the pipeline's input rate for the audio it gets;
        ``backpressure`` (on by default) makes output wait on the server's buffer."""

        sample_rate: int | None = None
        backpressure: bool = True

    def __init__(
        self,
        params: InputParams | None = None,
        *,
        hang_up: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        params = params or SwitchboardFrameSerializer.InputParams()
        super().__init__(params)
        self._params: SwitchboardFrameSerializer.InputParams = params
        self._input_rate = params.sample_rate  # given, or a transport's (see below)
        self._pipeline_rate = 0  # the pipeline's input rate, known at setup
        self._input_resampler = create_stream_resampler(
            clear_after_secs=params.resampler_clear_after_secs
        )
        self._output_resampler = create_stream_resampler(
            clear_after_secs=params.resampler_clear_after_secs
        )
        self._hang_up = hang_up
        self._hung_up = False
        self._clears = 0
        self.pressure = Backpressure()

    # Pipecat's FrameSerializer itself narrows BaseObject.setup's argument.
    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        self._pipeline_rate = setup.audio_in_sample_rate

    def use_input_rate(self, sample_rate: int) -> None:
        """Deliver input audio at ``sample_rate`` (a transport's own input rate),
        unless ``InputParams.sample_rate`` says otherwise."""
        if self._params.sample_rate is None:
            self._input_rate = sample_rate

    # ------------------------------------------------------------ pipeline → call
    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, InterruptionFrame):
            return await self._clear()
        if isinstance(frame, AudioRawFrame):
            return await self._audio_out(frame)
        if isinstance(
            frame, OutputTransportMessageFrame | OutputTransportMessageUrgentFrame
        ):
            message = frame.message
            if self.should_ignore_frame(frame) or not isinstance(message, dict):
                return None
            if message.get("type") == "clear":
                return await self._clear()
            if message.get("type") in CLIENT_MESSAGES:
                return json.dumps(message)
            return None
        if (
            isinstance(frame, EndFrame | CancelFrame)
            and self._hang_up
            and not self._hung_up
        ):
            self._hung_up = True
            await self._hang_up()
        return None

    async def _clear(self) -> str:
        self._clears += 1
        self.pressure.cleared()
        await self._output_resampler.reset()
        return json.dumps({"type": "clear"})

    async def _audio_out(self, frame: AudioRawFrame) -> bytes | None:
        pcm = await self._output_resampler.resample(
            _strip_wav_header(frame.audio), frame.sample_rate, SAMPLE_RATE
        )
        return await self._paced(pcm)

    async def flush_audio(self) -> bytes | None:
        """The audio the output resampler still holds (its filter's delay), as a
        frame to send before a mark, so the mark follows the last of the audio."""
        return await self._paced(await self._output_resampler.flush())

    async def _paced(self, pcm: bytes) -> bytes | None:
        """16 kHz 16-bit PCM as Float32LE, once the server's buffer has room."""
        if not pcm:
            return None
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
        data = samples.astype("<f4").tobytes()
        if self._params.backpressure:
            clears = self._clears
            await self.pressure.wait()
            if clears != self._clears:
                return None  # interrupted while waiting: this audio is stale
        self.pressure.sent(duration_ms(data))
        return data

    # ------------------------------------------------------------ call → pipeline
    async def deserialize(self, data: str | bytes) -> Frame | None:
        if isinstance(data, bytes):
            return await self._audio_in(data)
        try:
            message = json.loads(data)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        kind = message.get("type")
        if kind == "buffer":
            event = parse_message(message)
            if isinstance(event, BufferStatus):
                self.pressure.report(event)
            return None
        if kind == "dtmf":
            try:
                return InputDTMFFrame(KeypadEntry(str(message.get("digit"))))
            except ValueError:
                return None
        if kind in FORWARDED:
            return InputTransportMessageFrame(message=message)
        return None

    async def _audio_in(self, data: bytes) -> Frame | None:
        if not data or len(data) % 4:
            return None
        samples = np.frombuffer(data, dtype="<f4")
        pcm = np.rint(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        rate = self._input_rate or self._pipeline_rate or SAMPLE_RATE
        pcm = await self._input_resampler.resample(pcm, SAMPLE_RATE, rate)
        if not pcm:
            return None
        return InputAudioRawFrame(audio=pcm, sample_rate=rate, num_channels=1)


class SwitchboardInputTransport(WebsocketClientInputTransport):
    """The client input transport, taking the call's audio once the pipeline has
    started. The socket connects while the pipeline is set up, and Switchboard sends the
    call's audio from the first tick; Pipecat's input transport has nowhere to put audio
    until it starts (the receive loop failed on it, and the socket with it). Audio
    before that is left out."""

    _started = False

    async def set_transport_ready(self, frame: StartFrame) -> None:
        await super().set_transport_ready(frame)
        self._started = True

    async def push_audio_frame(self, frame: InputAudioRawFrame) -> None:
        if self._started:
            await super().push_audio_frame(frame)


class SwitchboardOutputTransport(WebsocketClientOutputTransport):
    """The client output transport, also sending interruptions (``clear``), sending
    marks after every sample before them, keeping a little audio ahead in the call's
    buffer, and letting the serializer see the end of the pipeline (to hang up if
    asked)."""

    _playout_end = 0.0  # when the audio sent so far will have played, at real time

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._playout_end = 0.0
            await self._write_frame(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Send a frame in pieces of at most a second (the server's limit), each
        paced to stay a little ahead of the call's playout."""
        if self._session.is_closing or not self._session.is_connected:
            return False
        rate, channels = self.sample_rate, self._params.audio_out_channels
        second = rate * channels * 2
        for start in range(0, len(frame.audio), second):
            piece = OutputAudioRawFrame(
                frame.audio[start : start + second],
                sample_rate=rate,
                num_channels=channels,
            )
            if not await self._write_frame(piece):
                return False
            await self._keep_ahead(len(piece.audio) / second)
        return True

    async def _keep_ahead(self, seconds: float) -> None:
        # The stock transport sends each chunk when the previous one has played, so
        # the call's buffer is empty just as the next arrives: any timing jitter in the
        # pipeline leaves the peer a gap of silence. Switchboard plays from its own
        # buffer at real time (and holds senders back at pauseMs), so stay a little
        # ahead: up to PLAYOUT_LEAD_S of audio waits there.
        now = time.monotonic()
        self._playout_end = max(self._playout_end, now) + seconds
        ahead = self._playout_end - now
        if ahead > PLAYOUT_LEAD_S:
            await asyncio.sleep(ahead - PLAYOUT_LEAD_S)

    async def send_message(
        self, frame: OutputTransportMessageFrame | OutputTransportMessageUrgentFrame
    ) -> None:
        serializer = self._switchboard_serializer()
        message = frame.message
        if (
            serializer is not None
            and isinstance(message, dict)
            and message.get("type") == "mark"
            and self._session.is_connected
        ):
            tail = await serializer.flush_audio()
            if tail:
                await self._session.send(tail)
        await super().send_message(frame)

    def _switchboard_serializer(self) -> SwitchboardFrameSerializer | None:
        serializer = cast(WebsocketClientParams, self._params).serializer
        return (
            serializer if isinstance(serializer, SwitchboardFrameSerializer) else None
        )

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)  # plays out what is queued, then hangs up the socket
        await self._serializer_sees(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._serializer_sees(frame)

    async def _serializer_sees(self, frame: Frame) -> None:
        serializer = cast(WebsocketClientParams, self._params).serializer
        if serializer is not None:
            await serializer.serialize(frame)


class SwitchboardTransport(WebsocketClientTransport):
    """Pipecat's WebSocket client transport on a Switchboard call's media socket."""

    def __init__(
        self,
        url: str,
        api_key: str,
        params: WebsocketClientParams | None = None,
    ) -> None:
        params = params or WebsocketClientParams(
            audio_in_enabled=True, audio_out_enabled=True
        )
        # The call's own format: Pipecat's transports resample from and to the
        # pipeline's rates (smoothly, in whole chunks), the serializer need not.
        params.audio_in_sample_rate = params.audio_in_sample_rate or SAMPLE_RATE
        params.audio_out_sample_rate = params.audio_out_sample_rate or SAMPLE_RATE
        # An empty call buffer plays silence: no need to send any at the end.
        params.audio_out_end_silence_secs = 0
        params.add_wav_header = False
        if not isinstance(params.serializer, SwitchboardFrameSerializer):
            params.serializer = SwitchboardFrameSerializer()
        # Input frames carry the transport's rate, not the pipeline's.
        params.serializer.use_input_rate(params.audio_in_sample_rate)
        params.additional_headers = {
            **(params.additional_headers or {}),
            "Authorization": f"Bearer {api_key}",
        }
        super().__init__(url, params)

    @classmethod
    def for_call(
        cls,
        client: Switchboard | AsyncSwitchboard,
        call: str | Mapping[str, Any],
        call_id: str | None = None,
        *,
        params: WebsocketClientParams | None = None,
        serializer_params: SwitchboardFrameSerializer.InputParams | None = None,
        hang_up: bool = False,
    ) -> SwitchboardTransport:
        """The transport for one call: ``for_call(client, call)`` with the call's
        snapshot connects to its ``mediaUrl``, at the server process hosting the call;
        ``for_call(client, session_id, call_id)`` connects at the client's
        ``base_url`` (where a call hosted by another process is bridged to it). With
        ``hang_up``, the call ends when the pipeline does (like Twilio's auto
        hang-up); otherwise it goes on."""
        url = media_socket_url(client.base_url, call, call_id)
        if isinstance(call, Mapping):
            session_id, call_id = str(call["sessionId"]), str(call["callId"])
        else:
            session_id = call
        assert call_id is not None  # media_socket_url refused it otherwise
        ended_id = call_id

        async def end_call() -> None:
            if isinstance(client, AsyncSwitchboard):
                await client.calls.end(session_id, ended_id)
            else:
                await asyncio.to_thread(client.calls.end, session_id, ended_id)

        params = params or WebsocketClientParams(
            audio_in_enabled=True, audio_out_enabled=True
        )
        params.serializer = SwitchboardFrameSerializer(
            serializer_params, hang_up=end_call if hang_up else None
        )
        return cls(url, client.api_key, params)

    def input(self) -> WebsocketClientInputTransport:
        if not self._input:
            self._input = SwitchboardInputTransport(self, self._session, self._params)
        return self._input

    def output(self) -> WebsocketClientOutputTransport:
        if not self._output:
            self._output = SwitchboardOutputTransport(self, self._session, self._params)
        return self._output

    @property
    def serializer(self) -> SwitchboardFrameSerializer:
        serializer = self._params.serializer
        assert isinstance(serializer, SwitchboardFrameSerializer)
        return serializer
