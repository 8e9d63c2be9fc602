"""A Pipecat bot on a Switchboard call, with no AI service: it greets with a short
chirp, then says back what it hears, softer (so what goes round an echo fades out).

It connects to the call's live media socket as a client, through the SDK's
``SwitchboardTransport`` (``SwitchboardFrameSerializer``: Float32 16 kHz ⇄ Pipecat's
16-bit frames). Needs the SDK with Pipecat: ``pip install -e 'sdk/python[pipecat]'``.

Against ``make run`` (with the test key it prints; ``jq`` to read the answers):

    export SB=http://127.0.0.1:8000 KEY=sb_test_…
    H="Authorization: Bearer $KEY"; J='Content-Type: application/json'
    SID=$(curl -s -X POST $SB/api/v1/sessions -H "$H" -H "$J" \\
          -d '{"displayName": "Bot line"}' | jq -r .data.sessionId)
    curl -s -X POST $SB/api/v1/sessions/$SID/connect -H "$H" >/dev/null
    curl -s -X POST $SB/api/v1/test-helpers/sessions/$SID/scan -H "$H" >/dev/null
    # the simulator's echo peer: it says back what it hears, 100 ms later
    CID=$(curl -s -X POST $SB/api/v1/sessions/$SID/calls -H "$H" -H "$J" \\
          -d '{"to": "15550000001@s.whatsapp.net"}' | jq -r .data.callId)
    .venv/bin/python examples/pipecat_echo_bot.py --base-url $SB --api-key $KEY \\
        --session $SID --call $CID --rounds 3 --hang-up

The greeting goes to the echo peer, comes back, the bot echoes it at half volume, and
so on until it is too faint; the call's ``outbound`` recording shows each round. After
each thing it heard, the bot marks the end of its echo, and the server answers the mark
when the caller has heard all of it. The bot prints one JSON line per thing worth
telling (connected, heard, marks played, the call's end, a closed socket with its close
code, what it heard and said) and exits when the call ends, after ``--rounds`` echoes
were heard, after ``--seconds``, or on Ctrl-C; ``--hang-up`` ends the call as it goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import numpy as np
from pipecat.frames.frames import (
    EndFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InputTransportMessageFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker, ProcessorUnusablePolicy
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner
from switchboard_sdk import AsyncSwitchboard
from switchboard_sdk.pipecat import SwitchboardTransport


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def greeting(seconds: float, rate: int) -> bytes:
    """A rising chirp (300 → 3000 Hz) as 16-bit PCM."""
    t = np.arange(int(seconds * rate)) / rate
    sweep = np.cos(2 * np.pi * (300 * t + (3000 - 300) / (2 * seconds) * t**2))
    return (0.5 * 32767 * sweep).astype("<i2").tobytes()


class Echo(FrameProcessor):
    """Says back what the caller says, scaled by ``gain``. When the caller falls
    silent after speaking, it marks the end of its echo: the server answers the mark
    once the caller has heard all of it. After ``rounds`` such echoes it ends."""

    LOUD = 1000  # a 16-bit sample above this is sound
    QUIET_FRAMES = 3  # this many quiet frames in a row end what the caller said

    def __init__(self, gain: float, rounds: int | None) -> None:
        super().__init__()
        self.gain = gain
        self.rounds = rounds
        self.heard_ms = 0.0
        self.said_ms = 0.0
        self.speaking = False
        self.quiet_frames = 0
        self.echoes = 0
        self.echoes_heard = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self.echo(frame)
        elif isinstance(frame, InputTransportMessageFrame):
            await self.on_message(frame.message)
        else:
            await self.push_frame(frame, direction)

    async def echo(self, frame: InputAudioRawFrame) -> None:
        pcm = np.frombuffer(frame.audio, dtype="<i2")
        ms = len(pcm) / frame.sample_rate * 1000
        self.heard_ms += ms
        softer = np.rint(pcm * self.gain).astype("<i2")
        self.said_ms += ms
        await self.push_frame(
            OutputAudioRawFrame(softer.tobytes(), frame.sample_rate, frame.num_channels)
        )
        if np.abs(pcm).max(initial=0) > self.LOUD:
            if not self.speaking:
                say("heard", atMs=round(self.heard_ms))
            self.speaking, self.quiet_frames = True, 0
        elif self.speaking:
            self.quiet_frames += 1
            if self.quiet_frames >= self.QUIET_FRAMES:
                self.speaking = False
                self.echoes += 1
                mark = {"type": "mark", "name": f"echo-{self.echoes}"}
                await self.push_frame(OutputTransportMessageFrame(message=mark))

    async def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "mark":
            say(
                "mark",
                name=message.get("name"),
                playedMs=message.get("playedMs"),
                cleared=message.get("cleared", False),
            )
            if str(message.get("name")).startswith("echo-") and "playedMs" in message:
                self.echoes_heard += 1
                if self.rounds and self.echoes_heard >= self.rounds:
                    await self.push_frame(EndWorkerFrame(reason="rounds done"))
        elif kind == "ended":
            say("ended", endReason=message["call"].get("endReason"))
            await self.push_frame(EndWorkerFrame(reason="the call ended"))
        elif kind == "error":
            say("error", code=message.get("code"), message=message.get("message"))


async def main(args: argparse.Namespace) -> int:
    client = AsyncSwitchboard(args.base_url, args.api_key)
    # The snapshot's mediaUrl names the server process hosting the call.
    call = await client.calls.get(args.session, args.call)
    transport = SwitchboardTransport.for_call(client, call, hang_up=args.hang_up)
    echo = Echo(args.gain, args.rounds)
    worker = PipelineWorker(
        Pipeline([transport.input(), echo, transport.output()]),
        idle_timeout_secs=None,
        enable_rtvi=False,
        # A socket that cannot connect ends the bot (with exit status 1).
        processor_unusable_policy=ProcessorUnusablePolicy.CANCEL,
    )
    failures: list[str] = []

    @transport.event_handler("on_connected")
    async def on_connected(transport: SwitchboardTransport, websocket: Any) -> None:
        say("connected", call=args.call)

    @worker.event_handler("on_pipeline_started")
    async def on_pipeline_started(worker: PipelineWorker, frame: Frame) -> None:
        # The mark follows the greeting: the server answers it once the caller has
        # heard all of it (to within one of the transport's 40 ms output chunks).
        await worker.queue_frames(
            [
                OutputAudioRawFrame(greeting(args.greeting, 16000), 16000, 1),
                OutputTransportMessageFrame(
                    message={"type": "mark", "name": "greeting"}
                ),
            ]
        )

    @worker.event_handler("on_pipeline_error")
    async def on_pipeline_error(worker: PipelineWorker, frame: Any) -> None:
        processor = frame.processor
        lasting = processor is not None and not processor.is_usable
        say("error", error=str(frame.error), processor=str(processor), lasting=lasting)
        if lasting:
            failures.append(str(frame.error))

    @transport.event_handler("on_disconnected")
    async def on_disconnected(transport: SwitchboardTransport, websocket: Any) -> None:
        say(
            "disconnected",
            code=getattr(websocket, "close_code", None),
            reason=getattr(websocket, "close_reason", None) or "",
        )
        await worker.cancel()

    async def time_limit() -> None:
        await asyncio.sleep(args.seconds)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=True)
    await runner.add_workers(worker)
    limit = asyncio.create_task(time_limit())
    try:
        await runner.run()
    finally:
        limit.cancel()
        await client.aclose()
    say("done", heardMs=round(echo.heard_ms), saidMs=round(echo.said_ms))
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--session", required=True, help="the session id")
    parser.add_argument("--call", required=True, help="the call id (active)")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this")
    parser.add_argument("--gain", type=float, default=0.5, help="echo volume (0–1)")
    parser.add_argument(
        "--rounds", type=int, help="stop once the caller has heard this many echoes"
    )
    parser.add_argument("--greeting", type=float, default=0.3, help="chirp seconds")
    parser.add_argument(
        "--hang-up", action="store_true", help="end the call when the bot stops"
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
