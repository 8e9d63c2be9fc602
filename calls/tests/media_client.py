"""A real WebSocket client for the media socket, recording everything it receives."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import numpy as np
import websockets

FRAME = 320


class MediaClient:
    def __init__(self, url: str, key: str | None) -> None:
        self.url = url
        self.key = key
        self.audio: list[tuple[float, np.ndarray]] = []
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self.ws: Any = None

    async def __aenter__(self) -> MediaClient:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        self.ws = await websockets.connect(
            self.url, additional_headers=headers, compression=None, max_size=2**20
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.wait_for(
                asyncio.gather(self._reader, return_exceptions=True), 5
            )

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                now = time.monotonic()
                if isinstance(message, bytes):
                    self.audio.append((now, np.frombuffer(message, dtype="<f4").copy()))
                else:
                    self.messages.append((now, json.loads(message)))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code

    async def send_audio(self, samples: np.ndarray) -> None:
        await self.ws.send(samples.astype("<f4").tobytes())

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(payload))

    async def stream(self, samples: np.ndarray, *, prebuffer_frames: int = 5) -> float:
        """Send in 20 ms frames at real time (after a small head start); return start time."""
        start = time.monotonic()
        frames = [samples[i : i + FRAME] for i in range(0, len(samples), FRAME)]
        for index, frame in enumerate(frames):
            due = start + max(0, index - prebuffer_frames) * 0.02
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send_audio(frame)
        return start

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for _, message in self.messages if message["type"] == kind]

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not seen within {timeout} s; messages: "
                    f"{[m['type'] for _, m in self.messages][-20:]}"
                )
            await asyncio.sleep(0.01)

    def received(self) -> np.ndarray:
        if not self.audio:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([frame for _, frame in self.audio])


def chirp(seconds: float, *, amplitude: float = 0.5) -> np.ndarray:
    """A rising sweep that starts at full amplitude (so its first sample is not zero)."""
    t = np.arange(int(seconds * 16000)) / 16000
    phase = 2 * np.pi * (300 * t + (3000 - 300) / (2 * seconds) * t**2) + np.pi / 2
    return (amplitude * np.sin(phase)).astype(np.float32)


def find(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Index where ``needle`` starts exactly in ``haystack`` (-1 if it is not there whole)."""
    nonzero = np.flatnonzero(haystack == needle[0])
    for index in nonzero:
        segment = haystack[index : index + len(needle)]
        if len(segment) == len(needle) and np.array_equal(segment, needle):
            return int(index)
    return -1
