"""Calls: the filtered list, a call's detail and timeline, end, mute, play, recordings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from calls import services as call_services
from calls.models import Call, CallState, Direction, Session
from calls.runtime import control
from calls.tests.conftest import wait_for
from conftest import Tenant
from dashboard.tests.conftest import paired_session

ECHO = "15550000001@s.whatsapp.net"


def a_call(
    session: Session,
    peer: str = ECHO,
    direction: str = Direction.OUTGOING,
    ended: bool = False,
) -> Call:
    """A call row (no runtime): enough for the pages that only read."""
    call = call_services.call_create(
        session=session, peer_address=peer, direction=direction, host="elsewhere"
    )
    if ended:
        ended_call = call_services.call_transition(
            call_id=call.pk, to=CallState.ENDED, end_reason="busy"
        )
        assert ended_call is not None
        return ended_call
    return call


def detail_url(call: Call, action: str = "") -> str:
    return f"/dashboard/calls/{call.session.public_id}/{call.public_id}/{action}"


@pytest.mark.django_db
class TestReading:
    def test_the_list_shows_the_environments_calls_newest_first(
        self, member: Client, tenant: Tenant, outsider: Tenant
    ) -> None:
        older = a_call(paired_session(tenant.test), "15550000111@s.whatsapp.net")
        newer = a_call(older.session, "15550000222@s.whatsapp.net")
        a_call(paired_session(tenant.live), "15550000333@s.whatsapp.net")
        a_call(paired_session(outsider.test), "15550000444@s.whatsapp.net")
        page = member.get("/dashboard/calls/").content.decode()
        assert page.index(newer.peer_address) < page.index(older.peer_address)
        assert "15550000333" not in page and "15550000444" not in page
        # The rows refresh themselves when a call changes state.
        assert 'hx-trigger="sb-call from:body' in page

    def test_filters_narrow_the_list(self, member: Client, tenant: Tenant) -> None:
        session = paired_session(tenant.test)
        live = a_call(session, "15550000111@s.whatsapp.net")
        ended = a_call(session, "15550000222@s.whatsapp.net", ended=True)
        incoming = a_call(
            session, "15550000333@s.whatsapp.net", direction=Direction.INCOMING
        )
        page = member.get("/dashboard/calls/?state=ended").content.decode()
        assert ended.peer_address in page and live.peer_address not in page
        page = member.get("/dashboard/calls/?direction=incoming").content.decode()
        assert incoming.peer_address in page and ended.peer_address not in page
        rows = member.get("/dashboard/calls/rows?state=ended").content.decode()
        assert ended.peer_address in rows and live.peer_address not in rows
        today = timezone.now().date()
        page = member.get(f"/dashboard/calls/?created_after={today}").content.decode()
        assert live.peer_address in page
        tomorrow = today + timedelta(days=1)
        page = member.get(
            f"/dashboard/calls/?created_after={tomorrow}"
        ).content.decode()
        assert live.peer_address not in page and "No calls match these filters" in page
        yesterday = today - timedelta(days=1)
        page = member.get(
            f"/dashboard/calls/?created_before={yesterday}"
        ).content.decode()
        assert live.peer_address not in page

    def test_bad_filters_are_explained(self, member: Client, tenant: Tenant) -> None:
        page = member.get(
            "/dashboard/calls/?created_after=2026-02-02&created_before=2026-01-01"
        ).content.decode()
        assert "“From” must be on or before “To”." in page
        page = member.get("/dashboard/calls/?state=dancing").content.decode()
        assert "Select a valid choice" in page

    def test_the_detail_shows_the_snapshot_and_the_timeline(
        self, member: Client, tenant: Tenant
    ) -> None:
        call = a_call(paired_session(tenant.test), ended=True)
        page = member.get(detail_url(call)).content.decode()
        assert call.peer_address in page and "busy" in page
        assert page.count('<code class="event-type">call.state</code>') == 2
        assert '<code class="event-type">call.ended</code>' in page
        assert f'hx-trigger="sb-call-{call.public_id} from:body' in page
        panel = member.get(detail_url(call, "panel")).content.decode()
        assert "call.ended" in panel and "<html" not in panel

    def test_members_see_no_call_controls(self, member: Client, tenant: Tenant) -> None:
        call = a_call(paired_session(tenant.test))
        page = member.get(detail_url(call)).content.decode()
        assert "End call" not in page and "Talk in the console" not in page

    @pytest.mark.parametrize("action", ["", "panel", "end", "mute", "play"])
    def test_an_outsiders_call_is_not_found(
        self, owner: Client, outsider: Tenant, action: str
    ) -> None:
        theirs = a_call(paired_session(outsider.test))
        url = detail_url(theirs, action)
        response = (
            owner.post(url) if action in ("end", "mute", "play") else owner.get(url)
        )
        assert response.status_code == 404

    @pytest.mark.parametrize("action", ["", "panel", "end", "mute"])
    def test_the_other_environments_call_is_not_found(
        self, owner: Client, tenant: Tenant, action: str
    ) -> None:
        live = a_call(paired_session(tenant.live))
        url = detail_url(live, action)
        response = owner.post(url) if action in ("end", "mute") else owner.get(url)
        assert response.status_code == 404
        live.refresh_from_db()
        assert live.state == CallState.INITIATING

    def test_a_call_under_another_of_the_sessions_is_not_found(
        self, owner: Client, tenant: Tenant
    ) -> None:
        call = a_call(paired_session(tenant.test))
        other = paired_session(tenant.test, "Other line")
        response = owner.get(f"/dashboard/calls/{other.public_id}/{call.public_id}/")
        assert response.status_code == 404

    @pytest.mark.parametrize("action", ["end", "mute", "play"])
    def test_members_cannot_control_calls(
        self, member: Client, tenant: Tenant, action: str
    ) -> None:
        call = a_call(paired_session(tenant.test))
        assert member.post(detail_url(call, action), {"muted": "on"}).status_code == 403
        call.refresh_from_db()
        assert call.state == CallState.INITIATING and not call.audio_muted

    def test_ending_an_ended_call_says_so(self, owner: Client, tenant: Tenant) -> None:
        call = a_call(paired_session(tenant.test), ended=True)
        response = owner.post(detail_url(call, "end"), follow=True)
        assert "The call had already ended." in response.content.decode()


@pytest.fixture
def live_call(engine: Any, fast_network: Any, tenant: Tenant) -> Call:
    call = control.call_place(
        session=paired_session(tenant.test), to=ECHO, record=False
    ).call
    wait_for(lambda: Call.objects.get(pk=call.pk).state == CallState.ACTIVE)
    call.refresh_from_db()
    return call


class TestControlling:
    def test_an_owner_mutes_unmutes_and_ends_a_live_call(
        self, owner: Client, live_call: Call
    ) -> None:
        page = owner.get(detail_url(live_call)).content.decode()
        assert "Mute" in page and "End call" in page
        assert 'data-confirm="End this call now?"' in page
        response = owner.post(
            detail_url(live_call, "mute"), {"muted": "on"}, follow=True
        )
        assert "Muted: the peer hears silence." in response.content.decode()
        live_call.refresh_from_db()
        assert live_call.audio_muted
        owner.post(detail_url(live_call, "mute"), {})
        live_call.refresh_from_db()
        assert not live_call.audio_muted
        response = owner.post(detail_url(live_call, "end"), follow=True)
        assert "Call ended." in response.content.decode()
        live_call.refresh_from_db()
        assert (
            live_call.state == CallState.ENDED and live_call.end_reason == "completed"
        )

    def test_the_console_ends_and_mutes_with_json(
        self, as_role: Callable[..., Client], live_call: Call
    ) -> None:
        admin = as_role("admin")
        muted = admin.post(
            detail_url(live_call, "mute"),
            {"muted": "on"},
            HTTP_ACCEPT="application/json",
        )
        assert muted.status_code == 200 and muted.json()["call"]["audioMuted"] is True
        ended = admin.post(detail_url(live_call, "end"), HTTP_ACCEPT="application/json")
        assert ended.json()["call"]["state"] == "ended"
        refused = admin.post(
            detail_url(live_call, "mute"),
            {"muted": "on"},
            HTTP_ACCEPT="application/json",
        )
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "call_not_active"


@pytest.mark.django_db
class TestRecordings:
    def recording(self, call: Call) -> Any:
        from recordings.models import Recording

        name = default_storage.save(
            f"recordings/{call.public_id}/mixed.wav", ContentFile(b"RIFF....WAVEfmt ")
        )
        return Recording.objects.create(
            environment=call.environment,
            call=call,
            kind="mixed",
            file_name=name,
            duration_ms=1000,
            size_bytes=16,
            expires_at=timezone.now() + timedelta(days=30),
        )

    def test_a_calls_recordings_have_players_and_downloads(
        self, member: Client, tenant: Tenant
    ) -> None:
        call = a_call(paired_session(tenant.test), ended=True)
        recording = self.recording(call)
        page = member.get(detail_url(call)).content.decode()
        audio = f"/dashboard/recordings/{recording.public_id}/audio"
        assert f'<audio controls preload="none" src="{audio}">' in page
        assert f'href="{audio}?download=1"' in page
        response = member.get(audio)
        assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
        assert response.getvalue().startswith(b"RIFF")
        download = member.get(audio + "?download=1")
        assert download["Content-Disposition"].startswith("attachment;")

    def test_an_outsiders_recording_is_not_found(
        self, owner: Client, outsider: Tenant
    ) -> None:
        recording = self.recording(a_call(paired_session(outsider.test), ended=True))
        response = owner.get(f"/dashboard/recordings/{recording.public_id}/audio")
        assert response.status_code == 404
