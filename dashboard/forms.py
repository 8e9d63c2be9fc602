"""The dashboard's forms: what a person types, validated with messages they can act on."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms

from calls.carriers.simulator import JID_RE
from calls.models import CallState, Direction

PHONE_RE = re.compile(r"^\+?\d{6,15}$")


class SessionCreateForm(forms.Form):
    display_name = forms.CharField(
        label="Name",
        max_length=100,
        error_messages={"required": "Give the line a name, e.g. “Support line”."},
    )
    device_browser = forms.CharField(
        label="Device browser (optional)", max_length=100, required=False
    )


class PairingCodeForm(forms.Form):
    phone_number = forms.RegexField(
        label="Phone number",
        regex=PHONE_RE,
        error_messages={
            "required": "Give the phone number of the line to link.",
            "invalid": "Give the phone number in digits, e.g. +15551230000.",
        },
    )


def to_jid(value: str) -> str:
    """Accept a JID or a phone number (spaces, dashes and a leading + allowed)."""
    value = value.strip()
    if "@" not in value:
        value = re.sub(r"[\s().-]", "", value).lstrip("+") + "@s.whatsapp.net"
    return value


class ConsoleCallForm(forms.Form):
    session = forms.UUIDField(
        error_messages={
            "required": "Choose a line to call from.",
            "invalid": "Choose a line to call from.",
        }
    )
    to = forms.CharField(
        label="Number",
        max_length=64,
        error_messages={"required": "Give the number to call."},
    )
    record = forms.BooleanField(required=False)

    def clean_to(self) -> str:
        jid = to_jid(self.cleaned_data["to"])
        if not JID_RE.match(jid):
            raise forms.ValidationError(
                "Give a phone number of 6 to 15 digits (e.g. +1 555 000 0001) "
                "or a JID like 15550000001@s.whatsapp.net."
            )
        return jid


class CallFilterForm(forms.Form):
    state = forms.ChoiceField(
        choices=[("", "Any state"), *CallState.choices], required=False
    )
    direction = forms.ChoiceField(
        choices=[("", "Any direction"), *Direction.choices], required=False
    )
    created_after = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    created_before = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        after, before = cleaned.get("created_after"), cleaned.get("created_before")
        if after and before and after > before:
            raise forms.ValidationError("“From” must be on or before “To”.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """The calls selector's filters; dates are whole UTC days, both included."""
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        filters: dict[str, Any] = {
            "state": data.get("state") or None,
            "direction": data.get("direction") or None,
        }
        if data.get("created_after"):
            filters["created_after"] = datetime.combine(
                data["created_after"], time.min, tzinfo=UTC
            ) - timedelta(microseconds=1)
        if data.get("created_before"):
            filters["created_before"] = datetime.combine(
                data["created_before"] + timedelta(days=1), time.min, tzinfo=UTC
            )
        return filters


class MuteForm(forms.Form):
    muted = forms.BooleanField(required=False)


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        error_messages={
            "required": "Name the key after what will use it, e.g. “voice agent”."
        },
    )


class EnvironmentSettingsForm(forms.Form):
    recording_retention_days = forms.IntegerField(
        label="Keep recordings for (days)",
        min_value=1,
        max_value=3650,
        error_messages={
            "required": "Give a number of days between 1 and 3650.",
            "invalid": "Give a whole number of days between 1 and 3650.",
            "min_value": "Keep recordings for at least 1 day.",
            "max_value": "Recordings can be kept for at most 3650 days (10 years).",
        },
    )
    record_calls = forms.BooleanField(label="Record calls", required=False)


class AssetUploadForm(forms.Form):
    audio = forms.FileField(
        label="Audio file",
        error_messages={
            "required": "Choose an audio file to upload.",
            "empty": "The file is empty.",
        },
    )


class PlayForm(forms.Form):
    asset = forms.UUIDField(
        error_messages={
            "required": "Choose an asset to play.",
            "invalid": "Choose an asset to play.",
        }
    )
    mode = forms.ChoiceField(
        choices=[("queue", "after what plays"), ("interrupt", "now (interrupt)")],
        initial="queue",
    )


ALL_EVENTS = "*"


def _event_choices() -> list[tuple[str, str]]:
    from events.models import EventType

    return [(ALL_EVENTS, "All events")] + [(value, value) for value in EventType.values]


class WebhookForm(forms.Form):
    url = forms.CharField(
        label="Endpoint URL",
        max_length=2048,
        widget=forms.TextInput(attrs={"placeholder": "https://example.com/webhooks"}),
        error_messages={"required": "Give the URL that should receive the events."},
    )
    events = forms.MultipleChoiceField(
        label="Events",
        widget=forms.CheckboxSelectMultiple,
        choices=_event_choices,
        initial=[ALL_EVENTS],
        error_messages={
            "required": "Choose at least one event type, or “All events”.",
            "invalid_choice": "%(value)s is not an event type.",
        },
    )
    description = forms.CharField(
        label="Description (optional)", max_length=500, required=False
    )


class WebhookEditForm(WebhookForm):
    enabled = forms.BooleanField(label="Enabled", required=False)
