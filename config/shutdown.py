"""Stop a server process cleanly, and soon, on SIGTERM (or Ctrl-C).

Daphne and uvicorn stop on SIGTERM each in its own way, and neither knows what this
process holds. Left to them, the calls hosted here were cut without a word (their rows
stayed ``active`` until the reaper failed them half a minute later), uvicorn waited
forever for Server-Sent Events streams, which never end by themselves, and once
Daphne's loop had stopped the interpreter waited at exit for every webhook attempt
queued on the embedded scheduler's threads, each up to its timeout: minutes after a
busy spell, during which further signals went unheard.

So the first SIGTERM or SIGINT starts this process's own stop, on the server's loop
while the server still serves, and hands the signal to the server only then:

1. the call engine ends every call it hosts (``failed``, ``endDetail.code``
   ``server_shutdown``): sockets get ``ended`` and close 1000, dial-out streams
   ``stop``, peers a hang-up; then it stops (``Engine.shutdown``);
2. the ended calls' recordings are finalised;
3. ``on_stop`` callbacks run: media sockets bridged to calls hosted elsewhere close
   1012 (reconnect: those calls go on);
4. Server-Sent Events streams end, each with a complete body, after the events of the
   ended calls; clients resume from the log with ``Last-Event-ID``;
5. the server gets the signal and stops as it always does.

A second signal goes to the server at once. Whatever still holds the process
``EXIT_AFTER_S`` after the first signal (a webhook attempt waiting out its timeout on a
scheduler thread, a request stuck on a stopped loop) is cut short: the process logs the
threads still running and exits. Webhook deliveries lose nothing by it: each attempt is
a row, and the sweep sends what is due.

``ShutdownAware`` is the ASGI wrapper that installs the handlers once the server runs
(from its main thread; a server running on another thread, as in the tests, keeps its
own), ends event streams, and runs the same stop on ``lifespan.shutdown``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# The whole stop fits in 10 s, the patience of `docker stop` and of most supervisors
# before SIGKILL: ending the calls and the work their end starts, then the server's
# own stop, with the forced exit as the last resort.
ENGINE_STOP_S = 5.0
STOP_WITHIN_S = 6.0
STREAMS_END_S = 1.0
EXIT_AFTER_S = 8.5
DISCONNECT: Message = {"type": "http.disconnect"}

_tried = False
_previous: dict[int, Any] = {}
_loop: asyncio.AbstractEventLoop | None = None
_signalled_once = threading.Event()
_ending_streams = False
_stop_task: asyncio.Task[None] | None = None
_on_stop: list[Callable[[], None]] = []
_streaming: set[_Request] = set()


def on_stop(callback: Callable[[], None]) -> None:
    """Run ``callback()`` on the server's loop when the process stops, after its calls
    have ended (it must not block)."""
    _on_stop.append(callback)


# ------------------------------------------------------------------ the signals


def install() -> bool:
    """Take SIGTERM and SIGINT first, for this process's own stop; True if installed.

    Called on the server's loop once the server runs (its own handlers are in place by
    then). Only the main thread can own signals: a server on another thread keeps its
    own handling.
    """
    global _tried, _loop
    if _tried:
        return False
    _tried = True
    if threading.current_thread() is not threading.main_thread():
        return False
    _loop = asyncio.get_running_loop()
    # Started now, not from the handler: a signal handler must not take the locks that
    # starting a thread takes (the main thread it interrupts may hold them).
    threading.Thread(
        target=_exit_at_the_deadline, name="exit-deadline", daemon=True
    ).start()
    for signum in SIGNALS:
        _previous[signum] = signal.getsignal(signum)
        signal.signal(signum, _signalled)
    return True


def _signalled(signum: int, frame: Any) -> None:
    if _signalled_once.is_set() or _loop is None or _loop.is_closed():
        _pass_on(signum, frame)  # a second signal: the server's own way, at once
        return
    _signalled_once.set()
    _loop.call_soon_threadsafe(_stop_then_pass_on, signum)


def _stop_then_pass_on(signum: int) -> None:
    logger.info("%s: stopping this process", signal.Signals(signum).name)
    task = _start_stop()

    def pass_on(_: asyncio.Task[None]) -> None:
        _pass_on(signum, None)

    task.add_done_callback(pass_on)


def _pass_on(signum: int, frame: Any) -> None:
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        # No handler of the server's: the default action, which ends the process.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def _exit_at_the_deadline() -> None:
    # A daemon thread keeps running while the interpreter waits for the others at exit.
    _signalled_once.wait()
    time.sleep(EXIT_AFTER_S)
    others = [
        thread.name
        for thread in threading.enumerate()
        if thread not in (threading.main_thread(), threading.current_thread())
    ]
    logger.warning(
        "Still running %.0f s after the signal; exiting now (threads: %s)",
        EXIT_AFTER_S,
        ", ".join(sorted(others)) or "only the main one",
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# ------------------------------------------------------------------ the stop


async def stop_process() -> None:
    """Stop what this process holds (its calls, then its event streams); once, however
    often it is asked."""
    await asyncio.shield(_start_stop())


def _start_stop() -> asyncio.Task[None]:
    global _stop_task
    if _stop_task is None:
        _stop_task = asyncio.get_running_loop().create_task(_stop())
    return _stop_task


async def _stop() -> None:
    global _ending_streams
    from calls.runtime.engine import current_engine
    from recordings.recorder import wait_for_recorders

    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_WITHIN_S
    engine = current_engine()
    if engine is not None:
        try:
            # A carrier that hangs on stopping must not hold the process.
            await asyncio.wait_for(engine.shutdown(ENGINE_STOP_S), ENGINE_STOP_S + 1)
        except Exception:
            logger.exception("The call engine did not stop cleanly")
    # The ended calls' recordings are closed and finalised on threads of their own,
    # which take no more work once the interpreter begins to exit.
    left = deadline - loop.time()
    if left > 0:
        await loop.run_in_executor(None, wait_for_recorders, left)
    for callback in list(_on_stop):
        try:
            callback()
        except Exception:
            logger.exception("A stop callback failed")
    _ending_streams = True
    ending = [request.end() for request in list(_streaming)]
    if ending:
        await asyncio.wait(ending, timeout=STREAMS_END_S)


# ------------------------------------------------------------------ the ASGI side


class _Request:
    """An event stream's ``receive`` and ``send``, so that a stop can end it as a
    client's disconnect would: the app (Django) then closes the stream and the body is
    completed here."""

    __slots__ = ("_abort", "_aborted", "_body_read", "_closed", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._body_read = False
        self._abort: asyncio.Future[None] | None = None
        self._aborted = False
        # Made once the response streams: done when it is over.
        self._closed: asyncio.Future[None] | None = None

    async def receive(self) -> Message:
        if not self._body_read:
            message = await self._receive()
            self._body_read = not message.get("more_body")
            return message
        if self._aborted:
            return DISCONNECT
        # After the body, Django waits here for the client to go away, as long as the
        # response lasts: a stop answers for the client.
        self._abort = asyncio.get_running_loop().create_future()
        reading = asyncio.ensure_future(self._receive())
        try:
            await asyncio.wait(
                (reading, self._abort), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not reading.done():
                reading.cancel()
        if reading.done() and not reading.cancelled():
            return reading.result()
        return DISCONNECT

    async def send(self, message: Message) -> None:
        if (
            message["type"] == "http.response.body"
            and message.get("more_body")
            and self._closed is None
        ):
            self._closed = asyncio.get_running_loop().create_future()
            _streaming.add(self)
            if _ending_streams:
                self.end()
        await self._send(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self.close()

    def end(self) -> asyncio.Future[None]:
        """End the stream now; the future is done once its response is over."""
        assert self._closed is not None
        self._aborted = True
        if self._abort is not None and not self._abort.done():
            self._abort.set_result(None)
        return self._closed

    async def complete(self) -> None:
        """After the app: finish a body the app left open because it was ended."""
        if self._aborted and self._closed is not None and not self._closed.done():
            await self._send({"type": "http.response.body", "body": b""})

    def close(self) -> None:
        _streaming.discard(self)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)


def _event_stream(scope: Scope) -> bool:
    """A request for Server-Sent Events: the responses that never end by themselves."""
    return any(
        name == b"accept" and b"text/event-stream" in value
        for name, value in scope["headers"]
    )


class ShutdownAware:
    """ASGI wrapper: this process's stop on SIGTERM/SIGINT and on ``lifespan.shutdown``,
    and event streams that end when it stops."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _tried:
            install()
        kind = scope["type"]
        if kind == "http" and _event_stream(scope):
            request = _Request(receive, send)
            try:
                await self.app(scope, request.receive, request.send)
                await request.complete()
            finally:
                request.close()
        elif kind == "lifespan":

            async def lifespan_receive() -> Message:
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    await stop_process()
                return message

            await self.app(scope, lifespan_receive, send)
        else:
            await self.app(scope, receive, send)
