"""The recordings page: the environment's recordings with lengths, waveforms and players;
filters, "older" pages, and nobody else's recordings."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Environment
from calls import services as call_services
from calls.models import Call, CallState, Direction
from conftest import Tenant
from dashboard.tests.conftest import paired_session
from recordings.models import Recording

pytestmark = pytest.mark.django_db

URL = "/dashboard/recordings/"
# A waveform as finalisation stores it: quiet, then loud, then quiet.
WAVEFORM = [[0, 0]] * 100 + [[-120, 118]] * 200 + [[-1, 1]] * 100


def an_ended_call(environment: Environment, peer: str = "15550000123") -> Call:
    session = paired_session(environment)
    call = call_services.call_create(
        session=session,
        peer_address=f"{peer}@s.whatsapp.net",
        direction=Direction.OUTGOING,
        host="elsewhere",
    )
    ended = call_services.call_transition(call_id=call.pk, to=CallState.ENDED)
    assert ended is not None
    return ended


def a_recording(
    call: Call,
    kind: str = "mixed",
    *,
    duration_ms: int = 83_400,
    created_at: datetime | None = None,
    waveform: list[list[int]] | None = WAVEFORM,
    expires_at: datetime | None = None,
) -> Recording:
    return Recording.objects.create(
        environment=call.environment,
        call=call,
        kind=kind,
        created_at=created_at or timezone.now(),
        file_name=f"env/{call.environment.public_id}/recordings/{call.public_id}/{kind}.wav",
        duration_ms=duration_ms,
        size_bytes=duration_ms * 32 + 44,
        expires_at=expires_at or timezone.now() + timedelta(days=30),
        waveform=waveform,
    )


def rows(page: str) -> list[str]:
    """The recordings' ids in the order the table lists them."""
    return re.findall(r'<tr data-recording-id="([0-9a-f-]+)">', page)


def waveforms(page: str) -> list[int]:
    """How many bars each drawn waveform has, in order."""
    drawn = re.findall(r'<svg class="waveform"[^>]*>(.*?)</svg>', page, re.S)
    bars = [re.search(r'd="([^"]*)"', svg) for svg in drawn]
    return [match.group(1).count("M") for match in bars if match]


def ids(*recordings: Recording) -> list[str]:
    return [str(recording.public_id) for recording in recordings]


def test_the_page_lists_recordings_newest_first_with_length_waveform_and_player(
    member: Client, tenant: Tenant
) -> None:
    call = an_ended_call(tenant.test)
    older = a_recording(call, "inbound", duration_ms=83_400)
    newer = a_recording(call, "mixed", duration_ms=5_000, waveform=WAVEFORM[:120])
    page = member.get(URL).content.decode()
    assert '<a href="/dashboard/recordings/" aria-current="page"' in page
    assert rows(page) == ids(newer, older)
    # Its length as text before anyone presses play.
    lengths = re.findall(r'data-testid="recording-duration">([^<]*)<', page)
    assert lengths == ["0:05", "1:23"]
    # One bar per stored span, drawn by the server.
    assert waveforms(page) == [120, 400]
    assert 'aria-label="Waveform of the inbound track, 1:23"' in page
    for recording in (newer, older):
        audio = f"/dashboard/recordings/{recording.public_id}/audio"
        assert f'<audio controls preload="none" src="{audio}">' in page
    # Each row links to its call's page.
    detail = f"/dashboard/calls/{call.session.public_id}/{call.public_id}/"
    assert page.count(f'href="{detail}"') == 2


def test_the_bars_follow_the_peaks(member: Client, tenant: Tenant) -> None:
    a_recording(an_ended_call(tenant.test), waveform=[[0, 0], [-127, 127], [-64, 32]])
    page = member.get(URL).content.decode()
    # x is the span, y runs down from +127 at the top to -127 at the bottom; silence is
    # still a short bar in the middle.
    assert 'viewBox="0 0 3 254"' in page
    assert 'd="M0.5 124V130M1.5 0V254M2.5 95V191"' in page


def test_a_recording_without_a_waveform_yet_or_without_audio_says_so(
    member: Client, tenant: Tenant
) -> None:
    call = an_ended_call(tenant.test)
    a_recording(call, "inbound", waveform=None)
    a_recording(call, "outbound", waveform=[])
    page = member.get(URL).content.decode()
    assert "Waveform not computed yet" in page and "No audio" in page
    assert waveforms(page) == []
    assert len(rows(page)) == 2


def test_outsiders_and_the_accounts_other_environment_never_see_them(
    as_role: Callable[..., Client], tenant: Tenant, outsider: Tenant
) -> None:
    ours = a_recording(an_ended_call(tenant.test))
    live = a_recording(an_ended_call(tenant.live))
    theirs_call = an_ended_call(outsider.test)
    theirs = a_recording(theirs_call)

    test_member = as_role("member")
    page = test_member.get(URL).content.decode()
    assert rows(page) == ids(ours)
    # Naming another tenant's call finds nothing, and says so.
    filtered = test_member.get(URL, {"call": str(theirs_call.public_id)})
    assert filtered.status_code == 200
    assert rows(filtered.content.decode()) == []
    assert "No call with this id in this environment." in filtered.content.decode()
    for recording in (live, theirs):
        audio = f"/dashboard/recordings/{recording.public_id}/audio"
        assert test_member.get(audio).status_code == 404

    live_member = as_role("member", tenant.live)
    assert rows(live_member.get(URL).content.decode()) == ids(live)
    filtered = live_member.get(URL, {"call": str(ours.call.public_id)})
    assert rows(filtered.content.decode()) == []


def test_filters_by_call_track_and_created_day(member: Client, tenant: Tenant) -> None:
    day = datetime(2025, 6, 10, 12, tzinfo=UTC)
    first = an_ended_call(tenant.test, "15550000001")
    second = an_ended_call(tenant.test, "15550000002")
    early = a_recording(first, "inbound", created_at=day - timedelta(days=2))
    on_the_day = a_recording(first, "mixed", created_at=day)
    late_inbound = a_recording(second, "inbound", created_at=day + timedelta(days=3))
    late_mixed = a_recording(second, "mixed", created_at=day + timedelta(days=3))

    def listed(**query: str) -> list[str]:
        response = member.get(URL, query)
        assert response.status_code == 200
        return rows(response.content.decode())

    assert listed(call=str(first.public_id)) == ids(on_the_day, early)
    assert listed(kind="inbound") == ids(late_inbound, early)
    assert listed(created_after="2025-06-10", created_before="2025-06-10") == ids(
        on_the_day
    )
    assert listed(created_after="2025-06-09") == ids(
        late_mixed, late_inbound, on_the_day
    )
    assert listed(created_before="2025-06-10") == ids(on_the_day, early)
    assert listed(call=str(second.public_id), kind="mixed") == ids(late_mixed)
    # What a person typed wrong is said next to the field, and nothing is listed.
    page = member.get(URL, {"call": "not-an-id"}).content.decode()
    assert "Give a call id as shown on the call&#x27;s page." in page
    assert rows(page) == []
    page = member.get(
        URL, {"created_after": "2025-06-12", "created_before": "2025-06-10"}
    ).content.decode()
    assert "must be on or before" in page and rows(page) == []


def test_older_pages_go_on_where_the_last_one_ended(
    member: Client, tenant: Tenant
) -> None:
    made = []
    for index in range(10):
        call = an_ended_call(tenant.test, f"155500001{index:02d}")
        made += [a_recording(call, kind) for kind in ("inbound", "outbound", "mixed")]
    newest_first = ids(*reversed(made))

    first = member.get(URL, {"kind": ""}).content.decode()
    assert rows(first) == newest_first[:25]
    link = re.search(r'href="\?([^"]*older=[^"]*)" data-testid="older"', first)
    assert link is not None
    older = URL + "?" + html.unescape(link.group(1))
    page = member.get(older).content.decode()
    assert rows(page) == newest_first[25:]
    assert 'data-testid="older"' not in page  # the last page
    assert 'href="?kind=">← Newest' in page  # back to the newest, same filters

    # A recording made meanwhile does not shift the older page.
    a_recording(an_ended_call(tenant.test, "15550000999"))
    assert rows(member.get(older).content.decode()) == newest_first[25:]


def test_expired_recordings_are_not_listed(member: Client, tenant: Tenant) -> None:
    call = an_ended_call(tenant.test)
    kept = a_recording(call, "mixed")
    a_recording(
        call,
        "inbound",
        created_at=timezone.now() - timedelta(days=31),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert rows(member.get(URL).content.decode()) == ids(kept)


def test_the_call_page_draws_its_recordings_waveforms(
    member: Client, tenant: Tenant
) -> None:
    call = an_ended_call(tenant.test)
    a_recording(call, "inbound")
    a_recording(call, "outbound", waveform=WAVEFORM[:250])
    page = member.get(
        f"/dashboard/calls/{call.session.public_id}/{call.public_id}/"
    ).content.decode()
    assert waveforms(page) == [400, 250]
    assert re.findall(r'data-testid="recording-duration">([^<]*)<', page) == [
        "1:23",
        "1:23",
    ]


def test_the_page_is_in_the_navigation_after_calls(member: Client) -> None:
    page = member.get("/dashboard/").content.decode()
    nav = re.findall(r'<a href="(/dashboard/[a-z]*/?)"', page.split("sidenav")[1])
    assert nav.index("/dashboard/recordings/") == nav.index("/dashboard/calls/") + 1
