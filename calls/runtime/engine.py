"""The process's call engine: runtimes, the media clock, housekeeping and command routing.

Every process that places, receives or controls calls has one engine, on its home loop
(``config.home``). A call's runtime lives in the engine that created it (``Call.host``).
Commands for a call hosted elsewhere travel over the channel layer to that engine's
channel and the reply comes back on a fresh channel; frames never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Literal, TypedDict

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from calls import hosts, lines
from calls.carriers import enabled_carriers, get_carrier
from calls.carriers.base import Carrier, CarrierError, CarrierLeg, LegInfo
from calls.models import CallState, EndReason
from calls.runtime import hooks, store
from calls.runtime.clock import MediaClock
from calls.runtime.runtime import CallRuntime
from config import priority
from config.errors import ApplicationError, Conflict, ServiceUnavailable

logger = logging.getLogger(__name__)

CommandHandler = Callable[[CallRuntime, dict[str, Any]], Awaitable[dict[str, Any]]]
_handlers: dict[str, CommandHandler] = {
    "end": lambda runtime, args: runtime.end(args.get("reason") or EndReason.COMPLETED),
    "accept": lambda runtime, args: runtime.accept(),
    "reject": lambda runtime, args: runtime.reject(),
    "mute": lambda runtime, args: runtime.mute(bool(args["muted"])),
    "dtmf": lambda runtime, args: runtime.send_dtmf(str(args["digits"])),
}


# The command that asks another process's engine to start (dial) a call it hosts.
START = "start"

MessageHandler = Callable[["Engine", dict[str, Any]], None]
_message_handlers: dict[str, MessageHandler] = {}


def register_message(kind: str, handler: MessageHandler) -> None:
    """Teach every engine a channel-layer message type (a transport's cross-process path).

    ``handler(engine, message)`` runs on the home loop for each message of that ``type``
    sent to the engine's channel; it must not block.
    """
    _message_handlers[kind] = handler


def register_command(name: str, handler: CommandHandler) -> None:
    """Teach every engine a command (playback, streams…): ``handler(runtime, args)``.

    Handlers run on the home loop in the process hosting the call and return the value
    sent back to the caller (JSON-serialisable); they raise ApplicationError to refuse.
    """
    _handlers[name] = handler


class CommandMessage(TypedDict):
    type: Literal["call.command"]
    call_id: str
    command: str
    args: dict[str, Any]
    reply_to: str


class CommandReply(TypedDict):
    type: Literal["call.command.reply"]
    snapshot: dict[str, Any] | None
    error: dict[str, Any] | None


# Why calls end when their process stops (``endDetail.code``): their media cannot
# follow them to another process.
SHUTDOWN = CarrierError(
    "server_shutdown", "The server process hosting the call was stopped."
)


def _error_payload(error: ApplicationError) -> dict[str, Any]:
    return {
        "status": error.status,
        "code": error.code,
        "title": error.title,
        "detail": error.detail,
    }


def media_capacity(capacity: int) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"This media process carries its {capacity} calls already; retry shortly "
        "(another process may take the call).",
        code="media_capacity",
        title="Media capacity reached",
        headers={"Retry-After": "2"},
    )


class Engine:
    def __init__(self) -> None:
        self.host_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.clock = MediaClock(on_error=self._tick_failed)
        self.runtimes: dict[str, CallRuntime] = {}
        self.channel_name = ""
        self.carriers: list[Carrier] = []
        self.hosts_lines = settings.SWITCHBOARD_HOSTS_LINES
        # Lines whose network presence this process holds: session id → generation.
        self.lines: dict[str, tuple[Carrier, int]] = {}
        # When each line that failed to come up last failed (it is tried again later).
        self._line_failures: dict[str, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Tasks that run as long as the engine does (the rest end with their work).
        self._lifelong: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set once the process is stopping: calls started from now on end at once.
        self.stopping = False
        # Calls being started here: their rows exist before their runtimes do, so a
        # command that arrives in between waits for the start to finish.
        self._starting = 0
        self._started: asyncio.Condition | None = None
        # Sockets served here for calls hosted elsewhere (bridged over the channel layer).
        self.bridged_sockets = 0
        # Places taken by calls admitted here whose runtimes do not exist yet (requests
        # admit calls from their threads; the runtimes start on the loop).
        self._admission = threading.Lock()
        self._admitted = 0

    # ------------------------------------------------------------ capacity
    @property
    def hosted_calls(self) -> int:
        """Calls hosted here, those admitted and starting included."""
        return len(self.runtimes) + self._admitted

    @property
    def load(self) -> int:
        """The media work this process carries: calls it hosts and sockets it bridges."""
        return self.hosted_calls + self.bridged_sockets

    @property
    def capacity(self) -> int:
        """How many calls and bridged sockets this process takes (0: no limit)."""
        return int(settings.MEDIA_MAX_CALLS)

    @property
    def full(self) -> bool:
        return bool(self.capacity) and self.load >= self.capacity

    def refuse_when_full(self) -> None:
        """Raise ``media_capacity`` (503) when another call would degrade every call here."""
        if self.full:
            raise media_capacity(self.capacity)

    def admit(self) -> None:
        """Take a place for a call about to start here (from any thread), or raise
        ``media_capacity``; ``start_call(admitted=True)`` or ``release`` gives it back."""
        with self._admission:
            self.refuse_when_full()
            self._admitted += 1

    def release(self) -> None:
        with self._admission:
            self._admitted -= 1

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        layer = get_channel_layer()
        if layer is not None and settings.REDIS_URL:
            # Default prefix on purpose: channels-redis serves one process-local receive
            # at a time per prefix, so engine and reply channels must share one.
            self.channel_name = await layer.new_channel()
            self._lifelong.add(self.spawn(self._listen(layer)))
        await database_sync_to_async(hosts.host_register, thread_sensitive=False)(
            host_id=self.host_id, channel_name=self.channel_name
        )
        priority.realtime(settings.MEDIA_REALTIME_PRIORITY)
        # Everything loaded so far (Django, the apps, their modules) lives as long as the
        # process: keep it out of the collector's full passes, which would otherwise
        # walk it all and stall the media clock for tens of milliseconds.
        gc.freeze()
        self.clock.start()
        await self._start_carriers()
        self._lifelong.add(self.spawn(self._housekeeping()))
        logger.info("Call engine %s started", self.host_id)

    async def shutdown(self, within_s: float) -> None:
        """End every call hosted here, then stop: the process is going away.

        The calls end ``failed`` (``endDetail.code`` ``server_shutdown``) as if ended
        through the API: their sockets get ``ended`` and close 1000, their streams
        ``stop``, their peers a hang-up, their recorders close. A call started meanwhile
        ends too. Ending them, and the work their end starts, get ``within_s``
        between them; the engine then stops whatever is left.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        self.stopping = True
        asked: set[str] = set()
        ending: set[asyncio.Task[Any]] = set()
        while True:
            for call_id, runtime in list(self.runtimes.items()):
                if call_id not in asked:
                    asked.add(call_id)
                    ending.add(
                        self.spawn(runtime.end(EndReason.FAILED, detail=SHUTDOWN))
                    )
            left = deadline - loop.time()
            if not ending or left <= 0:
                break
            _, ending = await asyncio.wait(
                ending, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
        if asked:
            logger.info("Ended %d calls: this process is stopping", len(asked))
        # What the ends started: streams sending `stop`, transport and event writes.
        while (left := deadline - loop.time()) > 0:
            follow_up = self._tasks - self._lifelong
            if not follow_up:
                break
            await asyncio.wait(follow_up, timeout=left)
        if self.runtimes:
            logger.warning(
                "%d calls did not end in time; the reaper ends them", len(self.runtimes)
            )
        try:
            await database_sync_to_async(hosts.host_retire, thread_sensitive=False)(
                self.host_id
            )
        except Exception:
            logger.warning("Could not mark this process as stopping")
        await self.stop()

    async def stop(self) -> None:
        await self.clock.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session_id, (carrier, _) in list(self.lines.items()):
            await carrier.line_down(session_id)
        if self.lines:
            self.lines.clear()
            try:
                await database_sync_to_async(
                    lines.lines_release, thread_sensitive=False
                )(self.host_id)
            except Exception:
                # Another process takes the lines over once their leases lapse.
                logger.warning("Could not release this process's line leases")
        for carrier in self.carriers:
            try:
                await carrier.stop()
            except Exception:
                logger.exception("Carrier %s failed to stop", carrier.name)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a coroutine in the background, keeping a reference and logging failures."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Engine task failed", exc_info=task.exception())

    def _tick_failed(self, member: object, exc: BaseException) -> None:
        logger.error("A call failed in the media clock", exc_info=exc)
        if isinstance(member, CallRuntime):
            self.spawn(member.end(EndReason.FAILED))

    def forget(self, runtime: CallRuntime) -> None:
        self.runtimes.pop(runtime.call_id, None)

    # ------------------------------------------------------------ starting calls
    def _runtime(self, call_pk: int, details: dict[str, Any]) -> CallRuntime:
        runtime = CallRuntime(
            self,
            call_pk=call_pk,
            call_id=details["call_id"],
            environment_id=details["environment_id"],
            session_id=details["session_id"],
            direction=details["direction"],
            state=details["snapshot"]["state"],
            snapshot=details["snapshot"],
            carrier=details["carrier"],
            client_gone_after_s=float(details.get("client_gone_after_s") or 0),
        )
        self.runtimes[runtime.call_id] = runtime
        return runtime

    @contextlib.asynccontextmanager
    async def _starting_call(self) -> AsyncIterator[None]:
        if self._started is None:
            self._started = asyncio.Condition()
        self._starting += 1
        try:
            yield
        finally:
            self._starting -= 1
            async with self._started:
                self._started.notify_all()

    async def _runtime_once_started(self, call_id: str) -> CallRuntime | None:
        """The call's runtime, waiting for calls being started here to get theirs."""
        runtime = self.runtimes.get(call_id)
        if runtime is not None or not self._starting or self._started is None:
            return runtime
        async with self._started:
            await self._started.wait_for(
                lambda: call_id in self.runtimes or not self._starting
            )
        return self.runtimes.get(call_id)

    async def start_call(
        self, call_pk: int, *, admitted: bool = False
    ) -> dict[str, Any]:
        """Create the runtime of an outgoing call this engine hosts and dial; an
        ``admitted`` call's place becomes its runtime's."""
        async with self._starting_call():
            return await self._start_call(call_pk, admitted)

    async def _start_call(self, call_pk: int, admitted: bool) -> dict[str, Any]:
        try:
            details = await database_sync_to_async(
                hosts.call_details, thread_sensitive=False
            )(call_pk)
            if self.stopping:
                return await self._end_unstarted(call_pk, details["carrier"])
            runtime = self._runtime(call_pk, details)
        finally:
            if admitted:  # the place is the runtime's now (or nobody's)
                self.release()
        line = details["line"]
        info = LegInfo(
            call_id=runtime.call_id,
            session_id=runtime.session_id,
            local_address=line.address,
            peer_address=details["peer_address"],
            line=line,
        )
        try:
            leg = await get_carrier(details["carrier"]).dial(info, runtime)
        except CarrierError as refusal:
            await runtime.end(EndReason.FAILED, from_peer=True, detail=refusal)
            return runtime.snapshot
        except Exception:
            logger.exception("Carrier failed to dial call %s", runtime.call_id)
            failure = CarrierError(
                "carrier_error", "The carrier failed to place the call."
            )
            await runtime.end(EndReason.FAILED, from_peer=True, detail=failure)
            return runtime.snapshot
        runtime.attach(leg)
        return runtime.snapshot

    async def _end_unstarted(self, call_pk: int, carrier: str) -> dict[str, Any]:
        """A call placed while this process stops never dials: it ends at once."""
        detail = {
            "carrier": carrier,
            "code": SHUTDOWN.code,
            "message": SHUTDOWN.message,
        }
        ended = await store.transition(
            call_pk, CallState.ENDED, EndReason.FAILED, None, detail
        )
        if ended is None:
            return await store.snapshot(call_pk)
        await database_sync_to_async(hooks.call_reaped, thread_sensitive=False)(call_pk)
        return ended

    async def start_call_on(
        self, host: str, call_pk: int, call_id: str, carrier: str = ""
    ) -> dict[str, Any]:
        """Start an outgoing call in the process ``host`` (the one holding its line)."""
        if host == self.host_id:
            return await self.start_call(call_pk)
        channel = await database_sync_to_async(
            hosts.live_channel_of, thread_sensitive=False
        )(host)
        reply = None
        if channel:
            reply = await self._ask(channel, call_id, START, {"call_pk": call_pk})
        if reply is not None and reply["snapshot"] is not None:
            return reply["snapshot"]
        failure = {
            "carrier": carrier,
            "code": "line_host_unavailable",
            "message": "The process holding the session's line did not answer.",
        }
        ended = await store.transition(
            call_pk, CallState.ENDED, EndReason.FAILED, None, failure
        )
        return ended if ended is not None else await store.snapshot(call_pk)

    async def offer_incoming(
        self, session_id: str, from_address: str, leg: CarrierLeg
    ) -> dict[str, Any]:
        """A call the network offers to a session rings here (``calls.runtime.inbound``);
        refused (``media_capacity``, the carrier rejects it) when this process is full."""
        self.refuse_when_full()
        async with self._starting_call():
            call_pk, details = await database_sync_to_async(
                hosts.offer_incoming, thread_sensitive=False
            )(session_id, from_address, self.host_id)
            runtime = self._runtime(call_pk, details)
            leg.bind(runtime)
            runtime.attach(leg)
            return runtime.snapshot

    # ------------------------------------------------------------ commands
    async def command(
        self, call_id: str, host: str, name: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        """Run a command on a call wherever its runtime lives; return the new snapshot."""
        runtime = self.runtimes.get(call_id)
        if runtime is None and host == self.host_id:
            runtime = await self._runtime_once_started(call_id)
        if runtime is not None:
            return await self._run_local(runtime, name, args)
        if host and host != self.host_id:
            channel = await database_sync_to_async(
                hosts.live_channel_of, thread_sensitive=False
            )(host)
            if channel:
                reply = await self._ask(channel, call_id, name, args)
                if reply is not None:
                    if reply["error"]:
                        error = reply["error"]
                        raise ApplicationError(
                            error["detail"],
                            status=error["status"],
                            code=error["code"],
                            title=error["title"],
                        )
                    assert reply["snapshot"] is not None
                    return reply["snapshot"]
        return await self._orphan_command(call_id, name)

    async def _run_local(
        self, runtime: CallRuntime, name: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        handler = _handlers.get(name)
        if handler is None:
            raise ValueError(f"unknown command {name!r}")
        return await handler(runtime, args)

    async def _orphan_command(self, call_id: str, name: str) -> dict[str, Any]:
        """No runtime answers for this call: it has ended, or its host died."""
        pk = await database_sync_to_async(hosts.call_pk_of, thread_sensitive=False)(
            call_id
        )
        current = await store.snapshot(pk)
        if current["state"] == CallState.ENDED:
            if name == "end":
                return current
            raise Conflict("The call has ended.", code="call_not_active")
        if name == "end":
            ended = await store.transition(pk, CallState.ENDED, EndReason.FAILED)
            if ended is None:
                return await store.snapshot(pk)
            # The runtime is gone with its process: finish what it left, as the reaper does.
            await database_sync_to_async(hooks.call_reaped, thread_sensitive=False)(pk)
            return ended
        raise ServiceUnavailable(
            "The process hosting this call is not answering; try again shortly.",
            code="call_host_unavailable",
        )

    async def _ask(
        self, channel: str, call_id: str, name: str, args: dict[str, Any]
    ) -> CommandReply | None:
        layer = get_channel_layer()
        reply_to = await layer.new_channel()
        message: CommandMessage = {
            "type": "call.command",
            "call_id": call_id,
            "command": name,
            "args": args,
            "reply_to": reply_to,
        }
        await layer.send(channel, message)
        try:
            reply: CommandReply = await asyncio.wait_for(
                layer.receive(reply_to), timeout=settings.CALL_COMMAND_TIMEOUT_S
            )
        except TimeoutError:
            logger.warning(
                "Engine on %s did not answer %s for %s", channel, name, call_id
            )
            return None
        return reply

    async def _listen(self, layer: Any) -> None:
        """Serve commands (and transports' messages) other processes send to this engine."""
        while True:
            try:
                message = await layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Engine channel receive failed")
                await asyncio.sleep(1)
                continue
            kind = message.get("type")
            if kind == "call.command":
                self.spawn(self._serve(layer, message))
            elif kind in _message_handlers:
                try:
                    _message_handlers[kind](self, message)
                except Exception:
                    logger.exception("Engine message %s failed", kind)

    async def _serve(self, layer: Any, message: CommandMessage) -> None:
        reply: CommandReply = {
            "type": "call.command.reply",
            "snapshot": None,
            "error": None,
        }
        runtime = self.runtimes.get(message["call_id"])
        try:
            if message["command"] == START:
                reply["snapshot"] = await self.start_call(
                    int(message["args"]["call_pk"])
                )
            elif runtime is None:
                reply["snapshot"] = await self._orphan_command(
                    message["call_id"], message["command"]
                )
            else:
                reply["snapshot"] = await self._run_local(
                    runtime, message["command"], message["args"]
                )
        except ApplicationError as error:
            reply["error"] = _error_payload(error)
        await layer.send(message["reply_to"], reply)

    # ------------------------------------------------------------ housekeeping
    async def _housekeeping(self) -> None:
        """Beat, carriers' upkeep, hold lines, notice calls ended elsewhere."""
        beat_every = settings.ENGINE_HEARTBEAT_S
        elapsed = 0
        last_failure = ""
        while True:
            await asyncio.sleep(1)
            elapsed += 1
            try:
                await self._start_carriers()
                await database_sync_to_async(
                    self._carrier_upkeep, thread_sensitive=False
                )()
                await self.manage_lines()
                if elapsed % beat_every == 0:
                    await database_sync_to_async(
                        hosts.host_beat, thread_sensitive=False
                    )(self.host_id, self.channel_name)
                    await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Once per distinct failure, not once a second while it lasts.
                if repr(exc) != last_failure:
                    logger.exception("Engine housekeeping failed")
                last_failure = repr(exc)
            else:
                last_failure = ""

    async def _start_carriers(self) -> None:
        """Start the carriers the deployment enables (and any enabled since)."""
        for carrier in enabled_carriers():
            if carrier not in self.carriers:
                self.carriers.append(carrier)
                await carrier.start(self)

    def _carrier_upkeep(self) -> None:
        for carrier in self.carriers:
            carrier.housekeeping()

    async def manage_lines(self) -> None:
        """Hold the lines this process may hold (calls/lines.py): bring newly held lines
        up, bring changed ones up again, and let go of lines no longer wanted."""
        holders = [carrier for carrier in self.carriers if carrier.holds_lines]
        if not holders or not self.hosts_lines:
            return
        by_name = {carrier.name: carrier for carrier in holders}
        held = await database_sync_to_async(lines.lines_claim, thread_sensitive=False)(
            self.host_id, list(by_name)
        )
        wanted = {line.info.session_id: line for line in held}
        gone = [session_id for session_id in self.lines if session_id not in wanted]
        for session_id in gone:
            carrier, _ = self.lines.pop(session_id)
            await carrier.line_down(session_id)
        if gone:
            await database_sync_to_async(lines.lines_release, thread_sensitive=False)(
                self.host_id, gone
            )
        now = time.monotonic()
        for session_id, line in wanted.items():
            current = self.lines.get(session_id)
            failed_at = self._line_failures.get(session_id)
            retry = failed_at is not None and now - failed_at >= settings.LINE_RETRY_S
            if current is not None and current[1] == line.generation and not retry:
                continue
            self._line_failures.pop(session_id, None)
            carrier = by_name[line.carrier]
            if current is not None:
                await carrier.line_down(session_id)
            self.lines[session_id] = (carrier, line.generation)
            try:
                await carrier.line_up(line.info)
            except CarrierError as error:
                self._line_failures[session_id] = time.monotonic()
                await database_sync_to_async(lines.line_failed, thread_sensitive=False)(
                    session_id, error.code, error.message
                )
            except Exception:
                self._line_failures[session_id] = time.monotonic()
                logger.exception("Carrier %s failed to bring a line up", carrier.name)
                await database_sync_to_async(lines.line_failed, thread_sensitive=False)(
                    session_id,
                    "carrier_error",
                    "The carrier failed to connect the line.",
                )

    async def _reconcile(self) -> None:
        """End local runtimes whose call another process has already ended."""
        if not self.runtimes:
            return
        gone = await database_sync_to_async(hosts.gone_among, thread_sensitive=False)(
            [runtime.call_pk for runtime in self.runtimes.values()]
        )
        for runtime in list(self.runtimes.values()):
            if runtime.call_pk in gone:
                runtime.drop()


_engine: Engine | None = None
_engine_lock: asyncio.Lock | None = None


async def ensure_engine() -> Engine:
    """Return this process's engine, starting it on the home loop if needed."""
    global _engine, _engine_lock
    if _engine is not None:
        return _engine
    if _engine_lock is None:
        _engine_lock = asyncio.Lock()
    async with _engine_lock:
        if _engine is None:
            engine = Engine()
            await engine.start()
            _engine = engine
    return _engine


def current_engine() -> Engine | None:
    return _engine
