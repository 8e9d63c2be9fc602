"""Server-Sent Events: the event log as it happens, resumed across disconnections.

Switchboard's stream (``Accept: text/event-stream`` on ``/events`` or
``/sessions/{id}/events``) opens with a ``retry:`` block that carries no event, then
sends each event as ``id:`` (the event id), ``event:`` (its type) and ``data:`` (the
envelope as one line of JSON), with a ``: ping`` comment after 15 s of quiet. Sent
``Last-Event-ID``, it first replays what came after that event from the log, then
continues live: no gap, no duplicate. ``EventStream`` and ``AsyncEventStream`` keep
the last id they yielded and reconnect with it when the connection ends or fails,
waiting the server's ``retry`` (or the one given) and backing off on failures.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx

from switchboard_sdk._errors import SwitchboardError
from switchboard_sdk._http import error_of
from switchboard_sdk.types import Event

CONTENT_TYPE = "text/event-stream"
DEFAULT_RETRY_S = 3.0


@dataclass(frozen=True)
class SseMessage:
    """One dispatched message of an event stream."""

    id: str | None
    event: str
    data: str


class SseParser:
    """The text/event-stream line protocol (WHATWG HTML §9.2), fed one line at a time."""

    def __init__(self) -> None:
        self.retry_ms: int | None = None
        self.last_id: str | None = None
        self._data: list[str] = []
        self._event = ""

    def feed(self, line: str) -> SseMessage | None:
        """Take one line (without its end); return a message when a blank line ends one."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            message = SseMessage(
                self.last_id, self._event or "message", "\n".join(self._data)
            )
            self._data, self._event = [], ""
            return message
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value or None
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


def _retryable(error: SwitchboardError) -> bool:
    return error.status == 429 or error.status >= 500


def _envelope(message: SseMessage) -> Event:
    return cast(Event, json.loads(message.data))


class _Reconnection:
    """When to try again: the server's ``retry`` after a clean end, doubling after
    failures up to ``max_delay``."""

    def __init__(self, delay: float | None, max_delay: float) -> None:
        self.fixed = delay
        self.server: float | None = None
        self.max_delay = max_delay
        self.failures = 0

    def next_delay(self, wait_hint: float | None = None) -> float:
        base = (
            self.fixed if self.fixed is not None else (self.server or DEFAULT_RETRY_S)
        )
        delay = base * 2 ** max(0, self.failures - 1)
        if wait_hint is not None:
            delay = max(delay, wait_hint)
        return float(min(self.max_delay, delay))


class _Base:
    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        last_event_id: str | None,
        reconnect: bool,
        retry: float | None,
        max_retry: float,
        read_timeout: float,
    ) -> None:
        self.url = url
        self.last_event_id = last_event_id
        self.reconnect = reconnect
        self.connections = 0
        self._headers = headers
        self._reconnection = _Reconnection(retry, max_retry)
        self._timeout = httpx.Timeout(10.0, read=read_timeout)

    def _request_headers(self) -> dict[str, str]:
        headers = {**self._headers, "Accept": CONTENT_TYPE, "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def _opened(self, response: httpx.Response) -> None:
        """Count a connection that answered 200 with an event stream."""
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith(CONTENT_TYPE):
            raise SwitchboardError(
                response.status_code,
                "not_an_event_stream",
                "Not an event stream",
                f"The server answered {content_type or 'no content type'}.",
                request_id=response.headers.get("X-Request-Id"),
            )
        self.connections += 1

    def _take(self, parser: SseParser, line: str) -> Event | None:
        message = parser.feed(line)
        if parser.retry_ms is not None:
            self._reconnection.server = parser.retry_ms / 1000
        if message is None:
            return None
        # Delivered events only move the resume point; the server never repeats one.
        self._reconnection.failures = 0
        if message.id:
            self.last_event_id = message.id
        return _envelope(message)


class EventStream(_Base):
    """A blocking iterator of events (see the module docstring); ``close()`` hangs up."""

    def __init__(
        self, client: httpx.Client, url: str, headers: dict[str, str], **options: Any
    ) -> None:
        super().__init__(url, headers, **options)
        self._client = client
        self._events = self._run()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> Generator[Event, None, None]:
        while True:
            wait_hint: float | None = None
            try:
                with self._client.stream(
                    "GET",
                    self.url,
                    headers=self._request_headers(),
                    timeout=self._timeout,
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        error = error_of(response)
                        if not (self.reconnect and _retryable(error)):
                            raise error
                        self._reconnection.failures += 1
                        wait_hint = error.retry_after
                    else:
                        self._opened(response)
                        parser = SseParser()
                        for line in response.iter_lines():
                            event = self._take(parser, line)
                            if event is not None:
                                yield event
            except httpx.TransportError:
                if not self.reconnect:
                    raise
                self._reconnection.failures += 1
            if not self.reconnect:
                return
            time.sleep(self._reconnection.next_delay(wait_hint))


class AsyncEventStream(_Base):
    """An async iterator of events (see the module docstring); ``aclose()`` hangs up."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        headers: dict[str, str],
        **options: Any,
    ) -> None:
        super().__init__(url, headers, **options)
        self._client = client
        self._events = self._run()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[Event, None]:
        while True:
            wait_hint: float | None = None
            try:
                async with self._client.stream(
                    "GET",
                    self.url,
                    headers=self._request_headers(),
                    timeout=self._timeout,
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        error = error_of(response)
                        if not (self.reconnect and _retryable(error)):
                            raise error
                        self._reconnection.failures += 1
                        wait_hint = error.retry_after
                    else:
                        self._opened(response)
                        parser = SseParser()
                        async for line in response.aiter_lines():
                            event = self._take(parser, line)
                            if event is not None:
                                yield event
            except httpx.TransportError:
                if not self.reconnect:
                    raise
                self._reconnection.failures += 1
            if not self.reconnect:
                return
            await asyncio.sleep(self._reconnection.next_delay(wait_hint))
