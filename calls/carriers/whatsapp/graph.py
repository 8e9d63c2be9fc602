"""The Graph API requests the carrier makes: a read of the number, and call actions.

Meta's refusals come back as ``{"error": {"code", "message", ...}}``: they become a
``CarrierError`` with Meta's code (``"190"``, ``"138006"``…) and message, the fact shown
as a session's ``lastError`` or a call's ``endDetail``. The access token travels only in
the ``Authorization`` header and is never logged.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import httpx
from django.conf import settings

from calls.carriers.base import CarrierError
from calls.carriers.whatsapp.settings import WhatsAppSettings

logger = logging.getLogger(__name__)

NUMBER_FIELDS = "display_phone_number,verified_name"


def _refusal(response: httpx.Response) -> CarrierError:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = error.get("code")
    message = str(error.get("message") or "").strip()
    details = (error.get("error_data") or {}).get("details")
    if details and details not in message:
        message = f"{message} ({details})" if message else str(details)
    if code is None:
        return CarrierError(
            f"http_{response.status_code}",
            message or f"The Graph API answered HTTP {response.status_code}.",
        )
    return CarrierError(str(code), message or f"Graph API error {code}.")


class GraphClient:
    """One process's requests to the Graph API (an ``httpx.AsyncClient`` per loop)."""

    def __init__(self) -> None:
        self._clients: dict[int, httpx.AsyncClient] = {}

    def _client(self) -> httpx.AsyncClient:
        import asyncio

        loop = asyncio.get_running_loop()
        client = self._clients.get(id(loop))
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                timeout=settings.WHATSAPP_GRAPH_TIMEOUT_S,
                follow_redirects=False,
                headers={"User-Agent": "Switchboard"},
            )
            self._clients[id(loop)] = client
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(RuntimeError):  # its loop is gone
                await client.aclose()

    async def _request(
        self,
        line: WhatsAppSettings,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        url = f"{line.graph_api_base}/{path}"
        try:
            response = await self._client().request(
                method,
                url,
                json=body,
                params=params,
                headers={"Authorization": f"Bearer {line.access_token}"},
            )
        except httpx.TimeoutException:
            raise CarrierError(
                "graph_timeout", "The Graph API did not answer in time."
            ) from None
        except httpx.HTTPError as error:
            raise CarrierError(
                "graph_unreachable",
                f"The Graph API could not be reached ({type(error).__name__}).",
            ) from None
        if response.status_code >= 400:
            refusal = _refusal(response)
            logger.info(
                "Graph API refused %s %s: %s %s",
                method,
                path.split("?")[0],
                refusal.code,
                refusal.message,
            )
            raise refusal
        try:
            data = response.json()
        except ValueError:
            raise CarrierError(
                "graph_bad_response", "The Graph API answered with no JSON."
            ) from None
        return data if isinstance(data, dict) else {}

    async def read_number(self, line: WhatsAppSettings) -> dict[str, Any]:
        """``GET /{phoneNumberId}``: proves the token may use the number."""
        return await self._request(
            line, "GET", line.phone_number_id, params={"fields": NUMBER_FIELDS}
        )

    async def call_action(
        self, line: WhatsAppSettings, action: str, **fields: Any
    ) -> dict[str, Any]:
        """``POST /{phoneNumberId}/calls`` with ``action`` and its fields."""
        body = {"messaging_product": "whatsapp", "action": action, **fields}
        return await self._request(
            line, "POST", f"{line.phone_number_id}/calls", body=body
        )


graph = GraphClient()
