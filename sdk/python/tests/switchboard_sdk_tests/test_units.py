"""The SDK's pure parts, without a server: audio packing, SSE parsing, backpressure."""

from __future__ import annotations

import array
import asyncio
import subprocess
import sys

import numpy as np
import pytest
from switchboard_sdk import Backpressure, BufferStatus
from switchboard_sdk.audio import chirp, from_f32le, to_f32le, tone
from switchboard_sdk.sse import SseMessage, SseParser


def test_importing_the_sdk_does_not_import_pipecat() -> None:
    probe = "import sys, switchboard_sdk; print('pipecat' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_samples_of_any_shape_pack_to_the_same_float32le_bytes() -> None:
    samples = chirp(0.05)
    packed = to_f32le(samples)
    assert len(packed) == 4 * 800
    assert packed == np.asarray(samples, dtype="<f4").tobytes()
    assert to_f32le(list(samples)) == packed
    assert to_f32le(np.asarray(samples, dtype=np.float64)) == packed
    assert to_f32le(packed) == packed  # bytes are taken as already packed
    assert from_f32le(packed) == samples
    assert len(tone(0.02)) == 320 and isinstance(tone(0.02), array.array)


def test_the_sse_parser_skips_the_retry_block_and_joins_data_lines() -> None:
    parser = SseParser()
    lines = [
        "retry: 3000",
        "",
        ": ping",
        "",
        "id: 01a",
        "event: call.state",
        'data: {"id": "01a",',
        'data: "type": "call.state"}',
        "",
    ]
    messages = [message for line in lines if (message := parser.feed(line))]
    assert parser.retry_ms == 3000
    assert messages == [
        SseMessage("01a", "call.state", '{"id": "01a",\n"type": "call.state"}')
    ]
    assert parser.last_id == "01a"


def status(buffered: int) -> BufferStatus:
    return BufferStatus(buffered, pause_ms=500, resume_ms=250, capacity_ms=10_000)


def test_backpressure_waits_for_the_server_once_it_says_pause() -> None:
    now = [0.0]
    pressure = Backpressure(clock=lambda: now[0])

    async def scenario() -> None:
        pressure.sent(400)
        await asyncio.wait_for(pressure.wait(), 0.1)  # below pauseMs: go on
        pressure.report(status(600))
        waiting = asyncio.create_task(pressure.wait())
        now[0] += 5  # the estimate drains, but the server's word counts
        await asyncio.sleep(0.01)
        assert not waiting.done()
        pressure.report(status(400))  # between the watermarks: still paused
        await asyncio.sleep(0.01)
        assert not waiting.done()
        pressure.report(status(240))
        await asyncio.wait_for(waiting, 0.1)

    asyncio.run(scenario())


def test_backpressure_pauses_on_its_own_estimate_until_it_has_played_out() -> None:
    now = [0.0]
    pressure = Backpressure(clock=lambda: now[0])

    async def scenario() -> None:
        pressure.sent(1000)  # no report yet: a second is on its way
        assert pressure.paused and pressure.buffered_ms() == 1000
        now[0] += 0.8  # 800 ms played at real time: 200 ms left, under resumeMs
        await asyncio.wait_for(pressure.wait(), 0.1)
        assert not pressure.paused
        pressure.sent(1000)
        pressure.cleared()  # a clear empties it at once
        await asyncio.wait_for(pressure.wait(), 0.1)

    asyncio.run(scenario())


def test_a_closed_socket_releases_a_waiting_sender() -> None:
    pressure = Backpressure()

    async def scenario() -> None:
        pressure.report(status(900))
        waiting = asyncio.create_task(pressure.wait())
        await asyncio.sleep(0.01)
        pressure.close()
        await asyncio.wait_for(waiting, 0.1)

    asyncio.run(scenario())


# Pipecat's own imports warn about deprecated audioop and websockets.legacy.
PIPECAT_WARNINGS = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@PIPECAT_WARNINGS
@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_the_pipecat_serializer_converts_rates_both_ways(rate: int) -> None:
    from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame
    from switchboard_sdk.pipecat import SwitchboardFrameSerializer

    serializer = SwitchboardFrameSerializer(
        SwitchboardFrameSerializer.InputParams(sample_rate=rate)
    )
    heard = tone(1.0, 440.0, amplitude=0.5)  # what the call sends, 20 ms at a time

    async def scenario() -> tuple[np.ndarray, np.ndarray]:
        pipeline_in = bytearray()
        for start in range(0, len(heard), 320):
            frame = await serializer.deserialize(to_f32le(heard[start : start + 320]))
            if frame is not None:
                assert isinstance(frame, InputAudioRawFrame)
                assert frame.sample_rate == rate and frame.num_channels == 1
                pipeline_in += frame.audio
        said = bytearray()
        chunk = rate // 25 * 2  # 40 ms of 16-bit audio at the pipeline's rate
        for start in range(0, len(pipeline_in), chunk):
            out = OutputAudioRawFrame(
                bytes(pipeline_in[start : start + chunk]), rate, 1
            )
            data = await serializer.serialize(out)
            if isinstance(data, bytes):
                said += data
                serializer.pressure.cleared()  # as if it played at once
        said += await serializer.flush_audio() or b""
        return (
            np.frombuffer(bytes(pipeline_in), "<i2") / 32768,
            np.frombuffer(bytes(said), "<f4"),
        )

    pipeline_in, said = asyncio.run(scenario())

    def hz(samples: np.ndarray, sample_rate: int) -> float:
        crossings = np.sum(np.diff(np.signbit(samples).astype(int)) != 0)
        return float(crossings / 2 / (len(samples) / sample_rate))

    # The pipeline got the tone at its rate, and the call gets it back at 16 kHz.
    assert abs(len(pipeline_in) - rate) <= rate * 0.1  # the resampler's delay
    assert abs(hz(pipeline_in[rate // 10 :], rate) - 440) < 5
    assert abs(len(said) - 16000) <= 16000 * 0.1
    assert abs(hz(said[1600:-1600], 16000) - 440) < 5
    assert 0.45 < float(np.abs(said[1600:-1600]).max()) < 0.55


@PIPECAT_WARNINGS
def test_the_pipecat_serializer_speaks_the_sockets_messages() -> None:
    import json

    from pipecat.audio.dtmf.types import KeypadEntry
    from pipecat.frames.frames import (
        InputDTMFFrame,
        InputTransportMessageFrame,
        InterruptionFrame,
        OutputAudioRawFrame,
        OutputTransportMessageFrame,
    )
    from switchboard_sdk.pipecat import SwitchboardFrameSerializer

    serializer = SwitchboardFrameSerializer()
    mark = {"type": "mark", "name": "greeting"}

    async def scenario() -> None:
        assert json.loads(await serializer.serialize(InterruptionFrame())) == {  # type: ignore[arg-type]
            "type": "clear"
        }
        sent = await serializer.serialize(OutputTransportMessageFrame(message=mark))
        assert json.loads(sent) == mark  # type: ignore[arg-type]
        other = OutputTransportMessageFrame(message={"type": "dance"})
        assert await serializer.serialize(other) is None

        played = await serializer.deserialize(json.dumps({**mark, "playedMs": 300}))
        assert isinstance(played, InputTransportMessageFrame)
        assert played.message == {**mark, "playedMs": 300}
        digit = await serializer.deserialize('{"type": "dtmf", "digit": "5"}')
        assert isinstance(digit, InputDTMFFrame) and digit.button == KeypadEntry.FIVE

        # A `buffer` report at pauseMs holds output audio until one at resumeMs.
        report = {"pauseMs": 500, "resumeMs": 250, "capacityMs": 10000}
        assert (
            await serializer.deserialize(
                json.dumps({"type": "buffer", "bufferedMs": 700, **report})
            )
            is None
        )
        audio = OutputAudioRawFrame(bytes(640), 16000, 1)
        held = asyncio.create_task(serializer.serialize(audio))
        await asyncio.sleep(0.05)
        assert not held.done()
        await serializer.deserialize(
            json.dumps({"type": "buffer", "bufferedMs": 200, **report})
        )
        assert await asyncio.wait_for(held, 1) == bytes(1280)

    asyncio.run(scenario())
