"""Lists are followed page after page: the caller sees one iterator."""

from __future__ import annotations

import asyncio

import httpx
from switchboard_sdk import AsyncSwitchboard, Switchboard

from conftest import LiveServer, Tenant


def counting_client() -> tuple[httpx.Client, list[httpx.Request]]:
    sent: list[httpx.Request] = []
    return httpx.Client(event_hooks={"request": [sent.append]}), sent


def test_sessions_are_listed_across_pages_newest_first(
    live: LiveServer, tenant: Tenant
) -> None:
    http, sent = counting_client()
    with Switchboard(live.url, tenant.test_key, http_client=http) as sb:
        made = [sb.sessions.create(f"Line {n}")["sessionId"] for n in range(7)]
        sent.clear()
        listed = [s["sessionId"] for s in sb.sessions.list(limit=3)]
    http.close()
    assert listed == made[::-1]
    # 3 + 3 + 1: three pages, the later ones asked for with the cursor given.
    assert len(sent) == 3
    assert "cursor" not in sent[0].url.params
    assert all(request.url.params["cursor"] for request in sent[1:])


def test_the_event_log_pages_forward_from_an_event(
    live: LiveServer, tenant: Tenant
) -> None:
    async def scenario() -> None:
        async with AsyncSwitchboard(live.url, tenant.test_key) as sb:
            first = await sb.sessions.create("Before")
            [created] = [
                e
                async for e in sb.events.list(types=["session.created"])
                if e["sessionId"] == first["sessionId"]
            ]
            later = [
                (await sb.sessions.create(f"After {n}"))["sessionId"] for n in range(5)
            ]
            events = [
                e
                async for e in sb.events.list(
                    after=created["id"], types=["session.created"], limit=2
                )
            ]
            # Oldest first, every page, nothing before the cursor.
            assert [e["sessionId"] for e in events] == later
            assert all(e["type"] == "session.created" for e in events)

    asyncio.run(scenario())
