"""The Calls page's search box: what a typed query can mean, as one database filter.

A query finds a call by its id (the whole UUID, or its first 8 or more hex digits), by
number in any spelling, or by the stored address itself (a JID, a SIP URI).

Numbers are compared as digits: the query's digits (4 or more) must appear unbroken in the
call's peer address. Every carrier stores a phone number's digits in one run: simulator
JIDs (``15550000006@s.whatsapp.net``), ``+E.164`` (SIP and WhatsApp Cloud calls) and SIP
URIs of a number (``sip:+15550000006@trunk``). So a plain ``LIKE '%15550000006%'`` finds
the call on SQLite and PostgreSQL alike, with no stored digits column, and a North
American number may be typed without its country code (``(555) 000-0006``). The scan
covers one environment's calls.

Nothing is read here: ``call_matches`` gives the filter that ``dashboard.selectors``
applies.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.db.models import Q

from dashboard.templatetags.wording import phone_digits

ID_PREFIX_MIN = 8
NUMBER_DIGITS_MIN = 4
ADDRESS_TEXT_MIN = 3
# How people write a number: digits, a leading +, spaces, brackets, dashes and dots.
PHONE_SPELLING = re.compile(r"\+?[\d\s().-]+")
HEX_ID = re.compile(rf"[0-9a-f]{{{ID_PREFIX_MIN},32}}")
NOT_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class CallQuery:
    """What a search box's text can mean; any of them matches."""

    text: str
    # The ids starting with the typed hex digits: the smallest and the largest.
    id_range: tuple[uuid.UUID, uuid.UUID] | None
    # A phone number's digits, to find in peer addresses.
    digits: str | None
    # Text to find in peer addresses (a JID, a SIP URI, a user name).
    address: str | None

    @property
    def means_nothing(self) -> bool:
        return self.id_range is None and self.digits is None and self.address is None


def id_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The UUIDs a call id, or its first hex digits, stands for (dashes ignored)."""
    compact = text.replace("-", "").lower()
    if not HEX_ID.fullmatch(compact):
        return None
    missing = 32 - len(compact)
    return uuid.UUID(compact + "0" * missing), uuid.UUID(compact + "f" * missing)


def number_digits(text: str) -> str | None:
    """The digits of a number as typed: an address (``…@s.whatsapp.net``, ``+1 555…``,
    ``sip:+1555…``) through the dashboard's own parsing, else any phone spelling."""
    digits = phone_digits(text)
    if digits is None and PHONE_SPELLING.fullmatch(text):
        digits = NOT_DIGITS.sub("", text)
    return digits if digits and len(digits) >= NUMBER_DIGITS_MIN else None


def parse(text: str) -> CallQuery:
    """Read what a search box's text can mean."""
    text = " ".join(text.split())
    ids = id_range(text)
    spelled_as_number = PHONE_SPELLING.fullmatch(text) is not None
    looks_like_text = (
        not spelled_as_number and ids is None and len(text) >= ADDRESS_TEXT_MIN
    )
    return CallQuery(
        text=text,
        id_range=ids,
        digits=number_digits(text),
        address=text if looks_like_text else None,
    )


def call_matches(query: CallQuery) -> Q:
    """The calls a query finds: by id, by a number's digits or by the address's text."""
    matches = []
    if query.id_range is not None:
        # A range of UUIDs, not a text prefix: the public id's unique index serves it on
        # both databases (a prefix would need PostgreSQL's uuid cast to text, unindexed).
        matches.append(Q(public_id__range=query.id_range))
    if query.digits is not None:
        matches.append(Q(peer_address__contains=query.digits))
    if query.address is not None:
        matches.append(Q(peer_address__icontains=query.address))
    if not matches:
        return Q(pk__in=[])
    found = matches[0]
    for match in matches[1:]:
        found |= match
    return found
