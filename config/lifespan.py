"""Adopt the ASGI server's loop as the home loop and start the call engine there."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from config import home

logger = logging.getLogger(__name__)

Scope = dict[str, Any]


class HomeLoopApp:
    """ASGI wrapper: the first call (or lifespan startup) makes the server loop home."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._started = False

    async def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if home.adopt(asyncio.get_running_loop()):
            from calls.runtime.engine import ensure_engine

            await ensure_engine()
        else:
            logger.warning("The home loop is another loop; the engine runs there")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self._start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self._start()
        await self.app(scope, receive, send)
