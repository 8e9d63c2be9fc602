"""How the dashboard words a call: phone numbers as people write them, states and end
reasons in plain English. No Django here; ``static/dashboard/js/wording.js`` formats
phone numbers the same way for the rows the page's script writes from live events."""

from __future__ import annotations

import re

# What a call's state and end reason read as (every CallState and EndReason value; a
# value missing here shows as it is stored).
STATE_WORDS = {
    "initiating": "Connecting",
    "ringing": "Ringing",
    "active": "Active",
    "ended": "Ended",
}
END_REASON_WORDS = {
    "completed": "Hung up on this side",
    "remote_hangup": "The other side hung up",
    "rejected": "Rejected on this side",
    "declined": "The other side declined",
    "busy": "The line was busy",
    "no_answer": "No answer",
    "missed": "Missed",
    "failed": "Failed",
    "session_disconnected": "The line was disconnected",
    "max_duration": "Reached the longest call allowed",
    "ended_by_staff": "Ended by support",
    "client_gone": "Ended: no client listening",
}

# Country calling codes of one and two digits (ITU-T E.164); all others have three.
ONE_DIGIT_CODES = frozenset({"1", "7"})
# fmt: off
TWO_DIGIT_CODES = frozenset({
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45",
    "46", "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61",
    "62", "63", "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94",
    "95", "98",
})
# fmt: on
# WhatsApp's domains whose user part is a phone number (a ``@lid`` user's is not).
PHONE_JID_DOMAINS = frozenset({"s.whatsapp.net", "c.us"})
E164_DIGITS = re.compile(r"[1-9][0-9]{5,14}")
SEPARATORS = re.compile(r"[\s().-]")


def state_words(state: str) -> str:
    return STATE_WORDS.get(state, state)


def end_reason_words(reason: str) -> str:
    return END_REASON_WORDS.get(reason, reason)


def phone_digits(address: str) -> str | None:
    """The international number in a JID, ``+E.164`` or ``sip:+…`` address, as digits.

    ``None`` when the address is not a phone number (``sip:alice@example.com``, an
    extension, a bare string of digits that may be a local number).
    """
    text = (address or "").strip()
    if text.lower().startswith(("sip:", "sips:")):
        user = text.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
        if not user.startswith("+"):
            return None
    elif "@" in text:
        user, domain = text.split("@", 1)
        if domain.lower() not in PHONE_JID_DOMAINS:
            return None
        user = user.split(":", 1)[0]  # a linked device's number: 1555…:12@…
    elif text.startswith("+"):
        user = text
    else:
        return None
    digits = SEPARATORS.sub("", user).removeprefix("+")
    return digits if E164_DIGITS.fullmatch(digits) else None


def _group_sizes(length: int) -> list[int]:
    """Threes, ending in one or two fours when threes do not divide the number."""
    if length <= 4:
        return [length]
    if length == 5:
        return [2, 3]
    sizes = [3] * (length // 3)
    if length % 3 >= 1:
        sizes[-1] = 4
    if length % 3 == 2:
        sizes[-2] = 4
    return sizes


def phone_number(address: str) -> str:
    """``15550000006@s.whatsapp.net`` → ``+1 555 000 0006``; other addresses as they are.

    The country calling code, then the national number in threes ending in a four: a
    North American number reads +1 555 000 0006, as it is written there.
    """
    digits = phone_digits(address)
    if digits is None:
        return address
    if digits[0] in ONE_DIGIT_CODES:
        code_length = 1
    elif digits[:2] in TWO_DIGIT_CODES:
        code_length = 2
    else:
        code_length = 3
    code, national = digits[:code_length], digits[code_length:]
    groups, at = [], 0
    for size in _group_sizes(len(national)):
        groups.append(national[at : at + size])
        at += size
    return f"+{code} " + " ".join(groups)
