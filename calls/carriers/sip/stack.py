"""The process's SIP stack: one baresip runtime, a user agent per line held here.

libre/baresip state is process-wide, so a process runs one stack (its own thread for
SIP, RTP and timers; every event comes back on the home loop). The listener on
``SIP_BIND`` serves every line this process holds: each is a user agent whose user is
the session's ``username``, and an INVITE whose Request-URI user matches no agent is
answered 404 by the stack itself.

Events are routed to legs by call handle from one runtime-wide subscription, taken
before any dial: an event can arrive before ``dial()`` returns the call, so events for a
handle not known yet are kept until its leg claims them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from calls.carriers.sip import settings as sip_settings
from calls.carriers.sip.leg import RECEIVE_THREADS, SipLeg
from config import priority

if TYPE_CHECKING:
    from baresip import StackEvent

    from calls.carriers.base import LegListener

logger = logging.getLogger(__name__)

# Events of handles no leg has claimed yet are kept this long, then dropped.
EARLY_EVENTS_KEPT = 64


@dataclass
class Line:
    session_id: str
    settings: sip_settings.SipSettings
    agent: Any
    generation_key: tuple[Any, ...]
    up: bool = False


def _local_host() -> str:
    host = settings.SIP_BIND.rsplit(":", 1)[0].strip("[]")
    public = (settings.SIP_PUBLIC_ADDRESS or "").rsplit(":", 1)[0].strip("[]")
    if public:
        return public
    return host if host not in ("", "0.0.0.0", "::") else ""  # noqa: S104


class SipStack:
    def __init__(self) -> None:
        self.runtime: Any = None
        self.lines: dict[str, Line] = {}
        self.by_agent: dict[int, str] = {}
        self.legs: dict[int, SipLeg] = {}
        self._early: dict[int, list[StackEvent]] = defaultdict(list)
        self._incoming: Any = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self.runtime is not None

    async def start(self) -> None:
        from baresip import Config, Runtime

        async with self._lock:
            if self.runtime is not None:
                return
            first, last = settings.SIP_RTP_PORTS
            extra = [
                f"sip_listen {settings.SIP_BIND}",
                f"rtp_ports {first}-{last}",
                # The runtime writes 16 kHz mono for every codec: the stack resamples.
                "ausrc_srate 16000",
                "ausrc_channels 1",
                "audio_jitter_buffer_type adaptive",
                f"audio_jitter_buffer_ms {settings.SIP_JITTER_BUFFER_MS}",
            ]
            config = Config(
                net_interface=_local_host() or None,
                max_concurrent_calls=None,
                rtp_timeout=settings.SIP_MEDIA_TIMEOUT_S,
                expose_headers=("To", "From", "P-Asserted-Identity"),
                native_log_level="warning",
                extra_config_text="\n".join(extra) + "\n",
            )
            runtime = Runtime()
            await runtime.start(config)
            runtime.subscribe(self._on_event)
            self.runtime = runtime
            priority.promote(RECEIVE_THREADS)
            logger.info("SIP stack listening on %s", settings.SIP_BIND)

    async def stop(self) -> None:
        async with self._lock:
            runtime, self.runtime = self.runtime, None
            if runtime is None:
                return
            for line in list(self.lines.values()):
                await self._unregister(line)
            try:
                await runtime.drain()
            except Exception:
                logger.debug("Draining the SIP stack failed", exc_info=True)
            await runtime.close()
            self.lines.clear()
            self.by_agent.clear()
            self.legs.clear()

    # ------------------------------------------------------------ lines
    async def line_up(
        self, session_id: str, line_settings: sip_settings.SipSettings
    ) -> None:
        """Bring a line up: a user agent for it, registered when the trunk wants it.

        Raises ``CarrierError`` with the registrar's status when it refuses.
        """
        from baresip import Account, RegistrationError, UserAgent

        from calls.carriers.base import CarrierError

        key = (
            line_settings.server,
            line_settings.transport,
            line_settings.username,
            line_settings.auth_username,
            line_settings.password,
            line_settings.register,
            line_settings.codecs,
        )
        line = self.lines.get(session_id)
        if line is None or line.generation_key != key:
            if line is not None:
                await self._unregister(line)
                self.by_agent.pop(line.agent.handle, None)
            account = Account(
                user=line_settings.username,
                domain=line_settings.server,
                password=line_settings.password,
                registrar=f"sip:{line_settings.server};transport={line_settings.transport}",
                reg_interval=settings.SIP_REGISTER_INTERVAL_S
                if line_settings.register
                else 0,
                transport=line_settings.transport,  # type: ignore[arg-type]
                audio_codecs=tuple(
                    sip_settings.CODEC_SPECS[codec] for codec in line_settings.codecs
                ),
                dtmf_mode="rtpevent",
                auth_user=line_settings.auth_username or None,
                extra_params=("ptime=20",),
            )
            agent = await UserAgent.create(self.runtime, account)
            line = Line(session_id, line_settings, agent, key)
            self.lines[session_id] = line
            self.by_agent[agent.handle] = session_id
        line.settings = line_settings
        if line_settings.register:
            try:
                await line.agent.register(timeout=settings.SIP_REGISTER_TIMEOUT_S)
            except RegistrationError as error:
                line.up = False
                code = str(error.status) if error.status else "register_failed"
                raise CarrierError(
                    code, f"REGISTER refused: {error.reason or error}"
                ) from error
            except Exception as error:
                line.up = False
                raise CarrierError(
                    "register_failed", f"REGISTER failed: {error}"
                ) from error
        line.up = True

    async def line_down(self, session_id: str) -> None:
        line = self.lines.get(session_id)
        if line is None:
            return
        line.up = False
        await self._unregister(line)

    async def _unregister(self, line: Line) -> None:
        if not line.settings.register:
            return
        try:
            await line.agent.unregister(timeout=5)
        except Exception:
            logger.debug(
                "Un-REGISTER of line %s failed", line.session_id, exc_info=True
            )

    def line_of(self, session_id: str) -> Line | None:
        line = self.lines.get(session_id)
        return line if line is not None and line.up else None

    # ------------------------------------------------------------ calls
    async def dial(
        self,
        session_id: str,
        uri: str,
        headers: dict[str, str],
        listener: LegListener,
    ) -> SipLeg:
        line = self.line_of(session_id)
        if line is None:
            from calls.carriers.base import CarrierError

            raise CarrierError(
                "line_not_held",
                "This process does not hold the session's SIP line; it may be "
                "coming up elsewhere.",
            )
        call = await line.agent.dial(uri, headers=headers or None)
        leg = SipLeg(call, incoming=False)
        leg.bind(listener)
        self._claim(call.handle, leg)
        return leg

    def _claim(self, handle: int, leg: SipLeg) -> None:
        self.legs[handle] = leg
        for event in self._early.pop(handle, []):
            self._deliver(leg, event)

    def release(self, leg: SipLeg) -> None:
        self.legs.pop(leg.call.handle, None)

    def _deliver(self, leg: SipLeg, event: StackEvent) -> None:
        try:
            leg.on_event(event)
        except Exception:
            logger.exception("A SIP call event failed")
        if leg.ended:
            self.legs.pop(leg.call.handle, None)

    def _on_event(self, event: StackEvent) -> None:
        from baresip import Event

        if event.event == Event.CALL_INCOMING:
            self._offer(event)
            return
        handle = event.call
        if not handle:
            return
        leg = self.legs.get(handle)
        if leg is not None:
            self._deliver(leg, event)
        elif event.event != Event.CALL_CLOSED:
            early = self._early[handle]
            early.append(event)
            if len(self._early) > EARLY_EVENTS_KEPT:
                self._early.pop(next(iter(self._early)))

    def _offer(self, event: StackEvent) -> None:
        from baresip.call import Call

        call = Call._from_incoming(self.runtime, event)
        session_id = self.by_agent.get(event.ua)
        line = self.lines.get(session_id) if session_id else None
        if line is None or not line.up:
            asyncio.get_running_loop().create_task(_refuse(call))
            return
        leg = SipLeg(call, incoming=True)
        self._claim(call.handle, leg)
        caller = _caller_of(event)
        asyncio.get_running_loop().create_task(
            self._ring(session_id or "", caller, leg)
        )

    async def _ring(self, session_id: str, caller: str, leg: SipLeg) -> None:
        from calls.runtime.inbound import offer_incoming
        from config.errors import ApplicationError

        try:
            await offer_incoming(session_id, caller, leg)
        except ApplicationError as refusal:
            logger.info("Refusing an incoming SIP call: %s", refusal.code)
            self.release(leg)
            await leg.reject()
        except Exception:
            logger.exception("Offering an incoming SIP call failed")
            self.release(leg)
            await leg.reject()


async def _refuse(call: Any) -> None:
    try:
        await call.reject()
    except Exception:
        logger.debug("Refusing a SIP call failed", exc_info=True)


def _caller_of(event: StackEvent) -> str:
    """The caller as a `from` address: +E.164 when the user part is a number."""
    uri = event.peer or event.from_ or ""
    user = uri.split(":", 1)[-1].split("@", 1)[0]
    digits = user.lstrip("+")
    if digits.isdigit() and 6 <= len(digits) <= 15:
        return f"+{digits}"
    return uri.split(";", 1)[0] or "unknown"


_stack: SipStack | None = None


def stack() -> SipStack:
    global _stack
    if _stack is None:
        _stack = SipStack()
    return _stack
