"""The Calls page's search box and filters: by id, by number in any spelling, by address;
by state, direction, end reason and dates; pages that keep the search; only this
environment's calls."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from calls import services as call_services
from calls.models import Call, CallState, Direction, Session
from conftest import Tenant
from dashboard.selectors import CALLS_PER_PAGE
from dashboard.tests.conftest import paired_session

pytestmark = pytest.mark.django_db

JID = "15550000006@s.whatsapp.net"
E164 = "+15550000006"
SIP_NUMBER = "sip:+15550000006@trunk.example.com"
OTHER_JID = "15550000007@s.whatsapp.net"
LONDON = "+442079460958"
SIP_USER = "sip:alice@pbx.example.com"
ROW = re.compile(r'<tr data-call-id="([0-9a-f-]{36})"')
OLDER = re.compile(r'href="([^"]+)" rel="next" data-testid="older-calls"')


def a_call(
    session: Session,
    peer: str,
    *,
    direction: str = Direction.OUTGOING,
    end_reason: str = "",
) -> Call:
    """A call row (no runtime), ended with ``end_reason`` when one is given."""
    call = call_services.call_create(
        session=session, peer_address=peer, direction=direction, host="elsewhere"
    )
    if end_reason:
        ended = call_services.call_transition(
            call_id=call.pk, to=CallState.ENDED, end_reason=end_reason
        )
        assert ended is not None
        return ended
    return call


def found(client: Client, query: dict[str, str]) -> list[str]:
    """The ids of the calls a search shows, in their order on the page."""
    response = client.get("/dashboard/calls/", query)
    assert response.status_code == 200
    return ROW.findall(response.content.decode())


def ids(*calls: Call) -> set[str]:
    return {str(call.public_id) for call in calls}


@pytest.fixture
def line(tenant: Tenant) -> Session:
    return paired_session(tenant.test)


@pytest.fixture
def numbers(line: Session) -> dict[str, Call]:
    """The same number as each carrier stores it, and other numbers and addresses."""
    return {
        "jid": a_call(line, JID),
        "e164": a_call(line, E164, direction=Direction.INCOMING),
        "sip_number": a_call(line, SIP_NUMBER),
        "other_jid": a_call(line, OTHER_JID),
        "london": a_call(line, LONDON),
        "sip_user": a_call(line, SIP_USER),
    }


class TestById:
    def test_the_full_call_id_finds_the_call(
        self, member: Client, numbers: dict[str, Call]
    ) -> None:
        call = numbers["london"]
        assert found(member, {"q": str(call.public_id)}) == [str(call.public_id)]
        assert found(member, {"q": str(call.public_id).upper()}) == [
            str(call.public_id)
        ]
        assert found(member, {"q": call.public_id.hex}) == [str(call.public_id)]

    def test_the_first_eight_characters_of_an_id_find_the_call(
        self, member: Client, line: Session, numbers: dict[str, Call]
    ) -> None:
        # Ids made in the same minute share their first characters: one set by hand.
        call = numbers["sip_user"]
        Call.objects.filter(pk=call.pk).update(
            public_id=uuid.UUID("0123abcd-0000-7000-8000-000000000001")
        )
        assert found(member, {"q": "0123abcd"}) == [
            "0123abcd-0000-7000-8000-000000000001"
        ]
        assert found(member, {"q": "0123abcd-0000-7"}) == [
            "0123abcd-0000-7000-8000-000000000001"
        ]
        # Seven characters are not an id prefix (nor anything else here).
        assert found(member, {"q": "0123abc"}) == []
        # The other calls' ids begin with the time they were made.
        prefix = str(numbers["jid"].public_id)[:8]
        assert set(found(member, {"q": prefix})) == {
            str(other.public_id)
            for other in numbers.values()
            if other != call and str(other.public_id).startswith(prefix)
        }

    def test_an_id_that_is_not_there_finds_nothing(
        self, member: Client, numbers: dict[str, Call]
    ) -> None:
        page = member.get("/dashboard/calls/", {"q": str(uuid.uuid4())})
        assert ROW.findall(page.content.decode()) == []
        assert "No calls match these filters." in page.content.decode()


class TestByNumber:
    @pytest.mark.parametrize(
        "spelling",
        [
            "+1 555 000 0006",
            "15550000006",
            "+15550000006",
            "(555) 000-0006",
            "555-000-0006",
            "+1 (555) 000-0006",
            "1.555.000.0006",
            "5550000006",
        ],
    )
    def test_any_spelling_of_a_number_finds_its_calls_on_every_carrier(
        self, member: Client, numbers: dict[str, Call], spelling: str
    ) -> None:
        assert set(found(member, {"q": spelling})) == ids(
            numbers["jid"], numbers["e164"], numbers["sip_number"]
        )

    def test_the_last_digits_of_a_number_find_it(
        self, member: Client, numbers: dict[str, Call]
    ) -> None:
        assert set(found(member, {"q": "0006"})) == ids(
            numbers["jid"], numbers["e164"], numbers["sip_number"]
        )
        assert set(found(member, {"q": "20 7946 0958"})) == ids(numbers["london"])

    def test_the_jid_itself_finds_the_number(
        self, member: Client, numbers: dict[str, Call]
    ) -> None:
        assert set(found(member, {"q": JID})) == ids(
            numbers["jid"], numbers["e164"], numbers["sip_number"]
        )
        assert set(found(member, {"q": OTHER_JID})) == ids(numbers["other_jid"])

    def test_a_sip_address_is_found_by_its_text(
        self, member: Client, numbers: dict[str, Call]
    ) -> None:
        assert found(member, {"q": SIP_USER}) == [str(numbers["sip_user"].public_id)]
        assert found(member, {"q": "Alice"}) == [str(numbers["sip_user"].public_id)]

    def test_the_results_read_as_phone_numbers(
        self, member: Client, numbers: dict[str, Call]
    ) -> None:
        page = member.get("/dashboard/calls/", {"q": "+1 555 000 0006"})
        text = page.content.decode()
        assert text.count(">+1 555 000 0006</span>") == 3
        assert 'value="+1 555 000 0006"' in text  # the box keeps what was typed

    def test_too_few_digits_are_explained(
        self, member: Client, numbers: dict[str, Call]
    ) -> None:
        page = member.get("/dashboard/calls/", {"q": "555"}).content.decode()
        assert "4 or more digits of a number" in page


class TestFilters:
    def test_state_direction_and_end_reason_narrow_the_list(
        self, member: Client, line: Session
    ) -> None:
        live = a_call(line, "15550000101@s.whatsapp.net")
        busy = a_call(line, "15550000102@s.whatsapp.net", end_reason="busy")
        declined = a_call(line, "15550000103@s.whatsapp.net", end_reason="declined")
        incoming = a_call(
            line, "15550000104@s.whatsapp.net", direction=Direction.INCOMING
        )
        assert set(found(member, {"state": "ended"})) == ids(busy, declined)
        assert set(found(member, {"state": "initiating"})) == ids(live)
        assert set(found(member, {"direction": "incoming"})) == ids(incoming)
        assert found(member, {"end_reason": "busy"}) == [str(busy.public_id)]
        assert found(member, {"end_reason": "declined"}) == [str(declined.public_id)]

    def test_end_reasons_are_chosen_in_words(self, member: Client) -> None:
        page = member.get("/dashboard/calls/").content.decode()
        assert '<option value="busy">The line was busy</option>' in page
        assert '<option value="remote_hangup">The other side hung up</option>' in page
        assert "Select a valid choice" in (
            member.get("/dashboard/calls/?end_reason=bored").content.decode()
        )

    def test_the_date_range_includes_both_days(
        self, member: Client, line: Session
    ) -> None:
        made = {}
        for day in (1, 2, 3, 4):
            call = a_call(line, f"1555000020{day}@s.whatsapp.net")
            Call.objects.filter(pk=call.pk).update(
                created_at=datetime(2025, 6, day, 12, tzinfo=UTC)
            )
            made[day] = call
        two_days = {"created_after": "2025-06-02", "created_before": "2025-06-03"}
        assert set(found(member, two_days)) == ids(made[2], made[3])
        assert set(found(member, {"created_after": "2025-06-04"})) == ids(made[4])
        assert set(found(member, {"created_before": "2025-06-01"})) == ids(made[1])

    def test_search_and_filters_combine(self, member: Client, line: Session) -> None:
        wanted = a_call(line, JID, direction=Direction.INCOMING, end_reason="busy")
        a_call(line, JID, direction=Direction.OUTGOING, end_reason="busy")
        a_call(line, JID, direction=Direction.INCOMING, end_reason="declined")
        a_call(line, OTHER_JID, direction=Direction.INCOMING, end_reason="busy")
        a_call(line, JID, direction=Direction.INCOMING)
        query = {
            "q": "(555) 000-0006",
            "state": "ended",
            "direction": "incoming",
            "end_reason": "busy",
            "created_after": str(timezone.now().date()),
        }
        assert found(member, query) == [str(wanted.public_id)]
        rows = member.get("/dashboard/calls/rows", query).content.decode()
        assert ROW.findall(rows) == [str(wanted.public_id)]


class TestPages:
    def test_older_pages_keep_the_search_and_the_filters(
        self, member: Client, line: Session
    ) -> None:
        wanted = [
            a_call(line, JID, end_reason="busy") for _ in range(CALLS_PER_PAGE + 3)
        ]
        a_call(line, OTHER_JID, end_reason="busy")
        a_call(line, JID, end_reason="declined")
        query = {"q": "+1 555 000 0006", "end_reason": "busy", "direction": ""}
        first = member.get("/dashboard/calls/", query).content.decode()
        newest_first = [str(call.public_id) for call in reversed(wanted)]
        assert ROW.findall(first) == newest_first[:CALLS_PER_PAGE]
        link = OLDER.search(first)
        assert link, first
        href = link.group(1).replace("&amp;", "&")
        params = parse_qs(urlsplit(href).query)
        assert params["q"] == ["+1 555 000 0006"]
        assert params["end_reason"] == ["busy"]
        assert "direction" not in params  # empty filters are left out of links
        second = member.get(href).content.decode()
        assert ROW.findall(second) == newest_first[CALLS_PER_PAGE:]
        assert OLDER.search(second) is None
        assert 'data-testid="newest-calls"' in second
        # The live refresh of an older page fetches that same page.
        assert "cursor=" in second.split('id="call-rows"')[1].split(">")[0]
        rows = member.get(
            "/dashboard/calls/rows", {**query, "cursor": params["cursor"][0]}
        ).content.decode()
        assert ROW.findall(rows) == newest_first[CALLS_PER_PAGE:]

    def test_a_cursor_from_elsewhere_shows_the_newest_calls(
        self, member: Client, line: Session
    ) -> None:
        call = a_call(line, JID)
        assert found(member, {"cursor": "not-a-cursor"}) == [str(call.public_id)]

    def test_a_page_with_no_older_calls_has_no_pager(
        self, member: Client, line: Session
    ) -> None:
        a_call(line, JID)
        page = member.get("/dashboard/calls/").content.decode()
        assert 'data-testid="older-calls"' not in page
        assert 'data-testid="newest-calls"' not in page


class TestTenancy:
    def test_other_environments_and_accounts_calls_never_appear(
        self, member: Client, tenant: Tenant, outsider: Tenant, line: Session
    ) -> None:
        mine = a_call(line, JID, end_reason="busy")
        live = a_call(paired_session(tenant.live), JID, end_reason="busy")
        theirs = a_call(paired_session(outsider.test), JID, end_reason="busy")
        for query in (
            {"q": "+1 555 000 0006"},
            {"q": JID},
            {"q": "0006", "end_reason": "busy", "state": "ended"},
            {},
        ):
            assert found(member, query) == [str(mine.public_id)], query
        for call in (live, theirs):
            assert found(member, {"q": str(call.public_id)}) == []
            assert str(call.public_id) not in found(
                member, {"q": str(call.public_id)[:13]}
            )

    def test_the_live_environment_searches_its_own_calls(
        self, tenant: Tenant, as_role: Any, line: Session
    ) -> None:
        a_call(line, JID)
        live = a_call(paired_session(tenant.live), JID)
        client = as_role("member", tenant.live)
        assert found(client, {"q": "15550000006"}) == [str(live.public_id)]

    def test_anonymous_visitors_are_sent_to_log_in(self, client: Client) -> None:
        response = client.get("/dashboard/calls/", {"q": "0006"})
        assert response.status_code == 302
        assert response["Location"].startswith("/dashboard/login/")


def test_the_search_parameters_round_trip(member: Client, line: Session) -> None:
    """A search is a link: the page's form shows back what its URL asked for."""
    a_call(line, JID, end_reason="busy")
    page = member.get(
        "/dashboard/calls/",
        {"q": "0006", "end_reason": "busy", "created_after": "2025-01-02"},
    ).content.decode()
    assert 'value="0006"' in page
    assert '<option value="busy" selected>The line was busy</option>' in page
    assert 'value="2025-01-02"' in page
