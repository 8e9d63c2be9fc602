"""``SipCarrier``: lines are registrations (or IP trunks) held by one process each."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from calls.carriers.base import (
    Carrier,
    CarrierError,
    CarrierLeg,
    LegInfo,
    LegListener,
    LineInfo,
)
from calls.carriers.sip import settings as sip_settings
from calls.carriers.sip.stack import stack

if TYPE_CHECKING:
    from calls.runtime.engine import Engine


class SipCarrier(Carrier):
    name = "sip"
    holds_lines = True

    def validate_settings(
        self,
        raw: Mapping[str, Any] | None,
        *,
        current: Mapping[str, Any] | None = None,
        current_secrets: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return sip_settings.validate(raw, current, current_secrets)

    def describe_settings(
        self, shown: Mapping[str, Any], secrets: Mapping[str, Any], session_id: str = ""
    ) -> dict[str, Any] | None:
        return sip_settings.describe(shown, secrets)

    def normalize_address(self, to: str) -> str:
        return sip_settings.normalize_address(to)

    # ------------------------------------------------------------ lifecycle
    async def start(self, engine: Engine) -> None:
        from django.conf import settings

        if settings.SWITCHBOARD_HOSTS_LINES:
            await stack().start()

    async def stop(self) -> None:
        await stack().stop()

    # ------------------------------------------------------------ lines
    async def line_up(self, line: LineInfo) -> None:
        from calls import lines

        sip = stack()
        if not sip.running:
            await sip.start()
        await sip.line_up(
            line.session_id, sip_settings.parse(line.settings, line.secrets)
        )
        await database_sync_to_async(lines.line_connected, thread_sensitive=False)(
            line.session_id
        )

    async def line_down(self, session_id: str) -> None:
        await stack().line_down(session_id)

    # ------------------------------------------------------------ calls
    async def dial(self, info: LegInfo, listener: LegListener) -> CarrierLeg:
        if info.line is None:
            raise CarrierError("no_line", "The call has no SIP line.")
        line_settings = sip_settings.parse(info.line.settings, info.line.secrets)
        headers: dict[str, str] = {}
        if line_settings.from_number:
            identity = f"<sip:{line_settings.from_number}@{line_settings.host}>"
            headers["P-Asserted-Identity"] = identity
        return await stack().dial(
            info.session_id,
            sip_settings.request_uri(info.peer_address, line_settings),
            headers,
            listener,
        )
