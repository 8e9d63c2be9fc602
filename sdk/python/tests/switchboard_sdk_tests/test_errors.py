"""Problem details become SwitchboardError with every field a caller needs."""

from __future__ import annotations

import asyncio

import pytest
from switchboard_sdk import AsyncSwitchboard, Switchboard, SwitchboardError

from conftest import LiveServer, Tenant
from switchboard_sdk_tests.conftest import ECHO, active_call, ready_session

MISSING = "01900000-0000-7000-8000-000000000000"


def test_an_unknown_session_is_a_404_with_a_request_id(sb: Switchboard) -> None:
    with pytest.raises(SwitchboardError) as raised:
        sb.sessions.get(MISSING)
    error = raised.value
    assert error.status == 404 and error.code == "session_not_found"
    assert error.title and error.detail and error.param is None
    assert error.request_id and error.type and error.type.startswith("https://")
    assert error.body["status"] == 404


def test_another_tenants_call_is_a_404_too(
    sb: Switchboard, live: LiveServer, outsider: Tenant, tenant: Tenant
) -> None:
    session_id, call_id = active_call(sb)
    with Switchboard(live.url, outsider.test_key) as other:
        with pytest.raises(SwitchboardError) as raised:
            other.calls.get(session_id, call_id)
        assert raised.value.status == 404
    # The same account's live environment does not see test objects either.
    with Switchboard(live.url, tenant.live_key) as live_env:
        with pytest.raises(SwitchboardError) as raised:
            live_env.calls.end(session_id, call_id)
        assert raised.value.status == 404


def test_a_bad_field_is_a_400_naming_it(sb: Switchboard) -> None:
    session_id = ready_session(sb)
    with pytest.raises(SwitchboardError) as raised:
        sb.calls.place(session_id, "not a jid")
    error = raised.value
    assert (error.status, error.code, error.param) == (400, "validation_error", "to")
    # A serializer's errors are all listed, each naming its field.
    with pytest.raises(SwitchboardError) as raised:
        sb.sessions.create("")
    assert raised.value.param == "displayName"
    assert [item["param"] for item in raised.value.errors] == ["displayName"]


def test_a_call_on_a_line_that_is_not_ready_is_a_409(sb: Switchboard) -> None:
    session_id = sb.sessions.create("Unpaired")["sessionId"]
    with pytest.raises(SwitchboardError) as raised:
        sb.calls.place(session_id, ECHO)
    assert (raised.value.status, raised.value.code) == (409, "session_not_ready")


def test_a_bad_key_is_a_401_and_the_async_client_raises_the_same(
    live: LiveServer,
) -> None:
    with (
        Switchboard(live.url, "sb_test_nope") as bad,
        pytest.raises(SwitchboardError) as raised,
    ):
        list(bad.sessions.list())
    assert raised.value.status == 401

    async def scenario() -> SwitchboardError:
        async with AsyncSwitchboard(live.url + "/api/v1/", "sb_test_nope") as bad:
            try:
                await bad.sessions.create("x")
            except SwitchboardError as error:
                return error
        raise AssertionError("no error")

    assert asyncio.run(scenario()).status == 401


def test_reusing_an_idempotency_key_with_another_body_is_a_409(
    sb: Switchboard,
) -> None:
    sb.sessions.create("First", idempotency_key="same-key")
    with pytest.raises(SwitchboardError) as raised:
        sb.sessions.create("Second", idempotency_key="same-key")
    assert (raised.value.status, raised.value.code) == (409, "idempotency_key_reused")


def test_test_helpers_are_a_404_with_a_live_key(
    live: LiveServer, tenant: Tenant
) -> None:
    with Switchboard(live.url, tenant.live_key) as live_env:
        session_id = live_env.sessions.create("Live line")["sessionId"]
        with pytest.raises(SwitchboardError) as raised:
            live_env.test_helpers.scan(session_id)
    assert raised.value.status == 404


def test_a_media_socket_for_another_tenants_call_is_refused(
    sb: Switchboard, live: LiveServer, outsider: Tenant
) -> None:
    session_id, call_id = active_call(sb)

    async def scenario() -> None:
        async with AsyncSwitchboard(live.url, outsider.test_key) as other:
            with pytest.raises(SwitchboardError) as raised:
                async with other.media(session_id, call_id):
                    pass
            assert raised.value.status == 403
            assert raised.value.code == "media_socket_refused"

    asyncio.run(scenario())


def test_dtmf_on_the_simulator_is_refused_as_unsupported(sb: Switchboard) -> None:
    session_id, call_id = active_call(sb)
    with pytest.raises(SwitchboardError) as raised:
        sb.calls.dtmf(session_id, call_id, "12#")
    assert (raised.value.status, raised.value.code) == (409, "not_supported_by_carrier")
    with pytest.raises(SwitchboardError) as raised:
        sb.calls.dtmf(session_id, call_id, "not digits")
    assert (raised.value.status, raised.value.param) == (400, "digits")
