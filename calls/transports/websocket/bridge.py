"""The exceptional cross-process media path: a socket in one process, the call in another.

Normally a call's media socket lands in the process that runs its runtime (see the README's
proxy configuration) and frames are handed over directly. When it does not, the socket's
process bridges to the hosting engine over the channel layer, in batches of
``MEDIA_BRIDGE_BATCH_FRAMES`` frames each way (a message per 20 ms frame would cost far more
than the call itself; see PERF-NOTES). Batching adds up to that many frames of latency.

Messages (all on channel-layer channels, typed below):
- socket → host engine channel: ``media.attach`` (reply: ``media.out`` with ``ready`` or an
  error), ``media.in`` (client audio and text frames, in order), ``media.detach``;
- host → socket channel: ``media.out`` (the peer's audio, JSON frames and close, in order).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from django.conf import settings

from calls.models import CallState
from calls.transports.websocket.link import WEBSOCKET, MediaLink, attach, ready_frame

if TYPE_CHECKING:
    from calls.runtime.engine import Engine

logger = logging.getLogger(__name__)

# Items are (kind, value): "a" audio bytes, "t" client text, "j" JSON frame, "c" close code.
Item = list[Any]


class AttachMessage(TypedDict):
    type: Literal["media.attach"]
    link: str
    call_id: str
    reply_to: str


class InMessage(TypedDict):
    type: Literal["media.in"]
    link: str
    items: list[Item]


class DetachMessage(TypedDict):
    type: Literal["media.detach"]
    link: str


class OutMessage(TypedDict):
    type: Literal["media.out"]
    items: list[Item]


class _Batcher:
    """Collects items and flushes them as one message: at a frame count, on text, or late."""

    def __init__(self, flush: Callable[[list[Item]], None], frames: int) -> None:
        self._flush = flush
        self._frames = frames
        self._items: list[Item] = []
        self._audio = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, item: Item) -> None:
        self._items.append(item)
        if item[0] == "a":
            self._audio += 1
            if self._audio >= self._frames:
                self.flush()
            elif self._timer is None:
                delay = self._frames * 0.02
                self._timer = asyncio.get_running_loop().call_later(delay, self.flush)
        else:
            self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._items:
            items, self._items, self._audio = self._items, [], 0
            self._flush(items)


class HostBridge:
    """The hosting engine's side: a MediaLink per remote socket, fed from messages."""

    def __init__(self, engine: Engine, layer: Any) -> None:
        self.engine = engine
        self.layer = layer
        self.links: dict[str, tuple[MediaLink, str]] = {}

    def _send(self, channel: str, items: list[Item]) -> None:
        message: OutMessage = {"type": "media.out", "items": items}
        self.engine.spawn(self._deliver(channel, message))

    async def _deliver(self, channel: str, message: OutMessage) -> None:
        try:
            await self.layer.send(channel, message)
        except Exception:
            logger.warning(
                "Media bridge to %s failed; detaching", channel, exc_info=True
            )
            for link_id, (_, target) in list(self.links.items()):
                if target == channel:
                    self.detach({"type": "media.detach", "link": link_id})

    def attach(self, message: AttachMessage) -> None:
        channel = message["reply_to"]
        runtime = self.engine.runtimes.get(message["call_id"])
        if runtime is None or runtime.state == CallState.ENDED:
            self._send(
                channel,
                [
                    [
                        "j",
                        {
                            "type": "error",
                            "code": "call_unavailable",
                            "message": "The call is not live here.",
                        },
                    ],
                    ["c", 1011],
                ],
            )
            return
        batcher = _Batcher(
            lambda items: self._send(channel, items), settings.MEDIA_BRIDGE_BATCH_FRAMES
        )
        link_id = message["link"]

        def close(code: int) -> None:
            batcher.add(["c", code])
            self.links.pop(link_id, None)

        link = MediaLink(
            send_audio=lambda data: batcher.add(["a", data]),
            send_json=lambda payload: batcher.add(["j", payload]),
            close=close,
            capacity_ms=settings.MEDIA_BUFFER_CAPACITY_MS,
            pause_ms=settings.MEDIA_BUFFER_PAUSE_MS,
            resume_ms=settings.MEDIA_BUFFER_RESUME_MS,
        )
        link.send_json(ready_frame(runtime.snapshot))
        attach(runtime, link)
        self.links[link_id] = (link, channel)

    def incoming(self, message: InMessage) -> None:
        entry = self.links.get(message["link"])
        if entry is None:
            return
        link = entry[0]
        for kind, value in message["items"]:
            if kind == "a":
                link.push_audio(value)
            elif kind == "t":
                link.handle_text(value)

    def detach(self, message: DetachMessage) -> None:
        entry = self.links.pop(message["link"], None)
        if entry is None:
            return
        for runtime in self.engine.runtimes.values():
            if entry[0] in runtime.clients_of(WEBSOCKET):
                runtime.detach_client(entry[0])


class SocketBridge:
    """The socket's side: forwards client frames to the host, replays what comes back."""

    def __init__(
        self,
        layer: Any,
        host_channel: str,
        *,
        send_audio: Callable[[bytes], None],
        send_json: Callable[[dict[str, Any]], None],
        close: Callable[[int], None],
    ) -> None:
        self.layer = layer
        self.host_channel = host_channel
        self.link_id = uuid.uuid4().hex
        self._send_audio, self._send_json, self._close = send_audio, send_json, close
        self._batcher = _Batcher(self._forward, settings.MEDIA_BRIDGE_BATCH_FRAMES)
        self._pending: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self.channel = ""

    async def open(self, call_id: str) -> None:
        self.channel = await self.layer.new_channel()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        attach: AttachMessage = {
            "type": "media.attach",
            "link": self.link_id,
            "call_id": call_id,
            "reply_to": self.channel,
        }
        await self.layer.send(self.host_channel, attach)

    async def _read(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            for kind, value in message.get("items", []):
                if kind == "a":
                    self._send_audio(value)
                elif kind == "j":
                    self._send_json(value)
                elif kind == "c":
                    self._close(value)
                    return

    def _forward(self, items: list[Item]) -> None:
        message: InMessage = {"type": "media.in", "link": self.link_id, "items": items}
        task = asyncio.get_running_loop().create_task(
            self.layer.send(self.host_channel, message)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # The consumer's input interface (same as MediaLink's).
    def push_audio(self, data: bytes) -> None:
        self._batcher.add(["a", data])

    def handle_text(self, text: str) -> None:
        self._batcher.add(["t", text])

    async def shut(self) -> None:
        self._batcher.flush()
        if self._reader is not None:
            self._reader.cancel()
        detach: DetachMessage = {"type": "media.detach", "link": self.link_id}
        try:
            await self.layer.send(self.host_channel, detach)
        except Exception:
            logger.debug("Media bridge detach failed", exc_info=True)


_host_bridges: dict[str, HostBridge] = {}


def _host_bridge(engine: Engine) -> HostBridge:
    bridge = _host_bridges.get(engine.host_id)
    if bridge is None:
        from channels.layers import get_channel_layer

        bridge = _host_bridges[engine.host_id] = HostBridge(engine, get_channel_layer())
    return bridge


def register() -> None:
    """Teach every engine the bridge's messages (the socket's process sends them)."""
    from calls.runtime.engine import register_message

    register_message("media.attach", lambda e, m: _host_bridge(e).attach(m))  # type: ignore[arg-type]
    register_message("media.in", lambda e, m: _host_bridge(e).incoming(m))  # type: ignore[arg-type]
    register_message("media.detach", lambda e, m: _host_bridge(e).detach(m))  # type: ignore[arg-type]
