"""The dashboard's forms: what a person types, validated with messages they can act on."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.conf import settings as django_settings

from calls.carriers.simulator import JID_RE
from calls.carriers.sip.settings import CODECS, DEFAULT_CODECS, TRANSPORTS
from calls.models import CallState, Direction, EndReason
from config.errors import InvalidRequest
from dashboard import search as call_search
from dashboard.templatetags.wording import end_reason_words
from events.models import DeliveryStatus

PHONE_RE = re.compile(r"^\+?\d{6,15}$")
CARRIER_LABELS = {
    "simulator": "Simulator",
    "sip": "SIP trunk",
    "whatsapp": "WhatsApp Business",
}


class SessionCreateForm(forms.Form):
    display_name = forms.CharField(
        label="Name",
        max_length=100,
        error_messages={"required": "Give the line a name, e.g. “Support line”."},
    )
    device_browser = forms.CharField(
        label="Device browser (optional)", max_length=100, required=False
    )

    def __init__(self, *args: Any, carriers: list[str], **kwargs: Any) -> None:
        """``carriers``: those the environment allows, the default first; a choice
        is offered only when there are several."""
        super().__init__(*args, **kwargs)
        self.carriers = carriers
        if len(carriers) > 1:
            self.fields["carrier"] = forms.ChoiceField(
                label="Carrier",
                choices=[(name, CARRIER_LABELS.get(name, name)) for name in carriers],
                initial=carriers[0],
                widget=forms.RadioSelect,
                error_messages={
                    "required": "Choose the carrier of the line.",
                    "invalid_choice": "Choose one of the carriers offered.",
                },
            )

    def chosen_carrier(self) -> str:
        """The carrier asked for (the default without a choice); after ``is_valid``."""
        return str(self.cleaned_data.get("carrier") or self.carriers[0])


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _secret_field(label: str, max_length: int) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=max_length,
        required=False,
        strip=False,
        # Never rendered back, not even after a refusal.
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password"}
        ),
    )


class CarrierSettingsForm(forms.Form):
    """A carrier's settings object; its rules are the carrier's, checked by the
    services, and its write-only secrets are never shown back."""

    title = ""
    secrets: tuple[str, ...] = ()
    retype_hint = "Type it again: a secret is never shown back."

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.secrets:
            hints = []
            if self.is_bound and self.data.get(self.add_prefix(name)):
                # A page shown again after a refusal leaves the secret's field empty.
                hints.append(self.retype_hint)
            if editing:
                hints.append("Leave blank to keep the stored one.")
            self.fields[name].help_text = " ".join(hints)

    @classmethod
    def initial_from(cls, described: dict[str, Any]) -> dict[str, Any]:
        """The edit form's values from what the carrier shows (never a secret)."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The settings object for the services (after ``is_valid``)."""
        raise NotImplementedError

    def typed_secrets(self) -> dict[str, str]:
        """The secrets typed in; a blank one is left out, which keeps the stored one."""
        return {
            name: self.cleaned_data[name]
            for name in self.secrets
            if self.cleaned_data.get(name)
        }

    def show_refusal(self, error: InvalidRequest) -> None:
        """Show a refusal of the settings (``param`` like ``sip.authUsername``) on the
        field it names, or above the fields."""
        head, _, name = (error.param or "").partition(".")
        field = _snake(name) if head == self.prefix else ""
        self.add_error(field if field in self.fields else None, error.detail)


class SipSettingsForm(CarrierSettingsForm):
    """A SIP trunk's settings."""

    prefix = "sip"
    title = "SIP settings"
    secrets = ("password",)
    retype_hint = "Type it again: a password is never shown back."

    server = forms.CharField(
        label="Server",
        max_length=255,
        widget=forms.TextInput(attrs={"placeholder": "sip.example.com[:5060]"}),
        error_messages={"required": "Give the trunk's SIP server as host[:port]."},
    )
    transport = forms.ChoiceField(
        label="Transport",
        choices=[(name, name.upper()) for name in TRANSPORTS],
        initial=TRANSPORTS[0],
    )
    username = forms.CharField(
        label="Username",
        max_length=64,
        error_messages={
            "required": "Give the SIP username (the user part of the line's address)."
        },
    )
    password = _secret_field("Password", 255)
    auth_username = forms.CharField(
        label="Auth username (optional)", max_length=64, required=False
    )
    from_number = forms.CharField(
        label="From number (optional)",
        max_length=32,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "+15551230000"}),
    )
    codecs = forms.CharField(
        label="Codecs, in order of preference",
        max_length=100,
        initial=", ".join(DEFAULT_CODECS),
        help_text=f"Comma separated, among {', '.join(CODECS)}.",
        error_messages={"required": "Give at least one codec, e.g. pcmu, pcma."},
    )
    register = forms.BooleanField(
        label="Register with the server (off: an IP-authenticated trunk)",
        required=False,
        initial=True,
    )

    def clean_from_number(self) -> str:
        return re.sub(r"[\s().-]", "", self.cleaned_data["from_number"])

    def clean_codecs(self) -> list[str]:
        text = self.cleaned_data["codecs"].lower()
        names = [name for name in re.split(r"[\s,]+", text) if name]
        unknown = [name for name in names if name not in CODECS]
        if unknown:
            raise forms.ValidationError(
                f"“{unknown[0]}” is not a codec the trunk can use; "
                f"choose among {', '.join(CODECS)}."
            )
        if len(set(names)) != len(names):
            raise forms.ValidationError("Name each codec once.")
        if not names:
            raise forms.ValidationError("Give at least one codec, e.g. pcmu, pcma.")
        return names

    @classmethod
    def initial_from(cls, described: dict[str, Any]) -> dict[str, Any]:
        """The edit form's values from what the carrier shows (never the password)."""
        return {
            "server": described.get("server") or "",
            "transport": described.get("transport") or TRANSPORTS[0],
            "username": described.get("username") or "",
            "auth_username": described.get("authUsername") or "",
            "from_number": described.get("fromNumber") or "",
            "register": bool(described.get("register", True)),
            "codecs": ", ".join(described.get("codecs") or DEFAULT_CODECS),
        }

    def settings(self) -> dict[str, Any]:
        """The settings object for the services; a blank password is left out, which
        keeps the stored one."""
        shown = (
            "server",
            "transport",
            "username",
            "auth_username",
            "from_number",
            "register",
            "codecs",
        )
        return {
            **{name: self.cleaned_data[name] for name in shown},
            **self.typed_secrets(),
        }


class WhatsAppSettingsForm(CarrierSettingsForm):
    """A WhatsApp Business number's settings (Meta's Cloud API)."""

    prefix = "whatsapp"
    title = "WhatsApp settings"
    secrets = ("access_token", "app_secret")

    phone_number_id = forms.CharField(
        label="Phone number ID",
        max_length=20,
        help_text="From the WhatsApp Manager: digits, not the phone number itself.",
        widget=forms.TextInput(attrs={"placeholder": "106540352242922"}),
        error_messages={
            "required": "Give the phone number ID from the WhatsApp Manager."
        },
    )
    access_token = _secret_field("Access token", 1024)
    app_secret = _secret_field("App secret", 1024)
    graph_api_base = forms.CharField(
        label="Graph API base (optional)", max_length=2048, required=False
    )

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, editing=editing, **kwargs)
        # Read here, not at import: the deployment (or a test) sets the default.
        widget = self.fields["graph_api_base"].widget
        widget.attrs["placeholder"] = django_settings.WHATSAPP_GRAPH_API_BASE

    @classmethod
    def initial_from(cls, described: dict[str, Any]) -> dict[str, Any]:
        """The edit form's values from what the carrier shows (never a secret); the
        default Graph API base is left blank, as it was typed."""
        base = described.get("graphApiBase") or ""
        if base == django_settings.WHATSAPP_GRAPH_API_BASE:
            base = ""
        return {
            "phone_number_id": described.get("phoneNumberId") or "",
            "graph_api_base": base,
        }

    def settings(self) -> dict[str, Any]:
        """The settings object for the services; a blank Graph API base is the
        default, a blank secret keeps the stored one."""
        return {
            "phone_number_id": self.cleaned_data["phone_number_id"],
            "graph_api_base": self.cleaned_data["graph_api_base"],
            **self.typed_secrets(),
        }


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
        return str(self.cleaned_data["to"]).strip()


def simulator_address(value: str) -> str:
    """The console's number for a simulator line: a JID (a phone number is converted)."""
    jid = to_jid(value)
    if not JID_RE.match(jid):
        raise InvalidRequest(
            "Give a phone number of 6 to 15 digits (e.g. +1 555 000 0001) "
            "or a JID like 15550000001@s.whatsapp.net.",
            param="to",
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


class CallSearchForm(CallFilterForm):
    """The Calls page: the search box, then the filters; every value is a GET parameter,
    so a search is a link."""

    q = forms.CharField(
        label="Search",
        max_length=200,
        required=False,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "Call id, number or JID",
                "autocomplete": "off",
            }
        ),
    )
    end_reason = forms.ChoiceField(
        label="End reason",
        choices=[
            ("", "Any end reason"),
            *((value, end_reason_words(value)) for value in EndReason.values),
        ],
        required=False,
    )

    field_order = ["q", "state", "direction", "end_reason"]

    def clean_q(self) -> str:
        text = str(self.cleaned_data["q"]).strip()
        if text and call_search.parse(text).means_nothing:
            raise forms.ValidationError(
                "Type a call id (at least its first 8 characters), 4 or more digits "
                "of a number, or an address."
            )
        return text

    def filters(self) -> dict[str, Any]:
        """The calls selector's filters and ``end_reason``; nothing when not valid."""
        if not self.is_valid():
            return {}
        return {
            **super().filters(),
            "end_reason": self.cleaned_data.get("end_reason") or None,
        }

    def text(self) -> str:
        """The search box's text, when the form is valid."""
        return str(self.cleaned_data.get("q") or "") if self.is_valid() else ""


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(
        label="Status",
        choices=[("", "Any status"), *DeliveryStatus.choices],
        required=False,
    )

    def chosen_status(self) -> str | None:
        return (self.cleaned_data.get("status") or None) if self.is_valid() else None


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


def _role_choices(may_grant_owner: bool) -> list[tuple[str, str]]:
    from accounts.models import Role

    return [
        (value, label)
        for value, label in Role.choices
        if may_grant_owner or value != Role.OWNER
    ]


class InvitationForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        # A text box (the stylesheet's), with the keyboard and checks of an address.
        widget=forms.TextInput(
            attrs={
                "inputmode": "email",
                "autocomplete": "off",
                "placeholder": "name@example.com",
            }
        ),
        error_messages={
            "required": "Give the email address to send the invitation to.",
            "invalid": "Enter an email address, e.g. name@example.com.",
        },
    )
    role = forms.ChoiceField(
        label="Role",
        initial="member",
        error_messages={"invalid_choice": "Choose one of the roles offered."},
    )

    def __init__(self, *args: Any, may_grant_owner: bool, **kwargs: Any) -> None:
        """``may_grant_owner``: whether the owner role is offered (to owners only)."""
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(may_grant_owner)  # type: ignore[attr-defined]


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(
        choices=lambda: _role_choices(True),
        error_messages={
            "required": "Choose a role.",
            "invalid_choice": "Choose one of the roles offered.",
        },
    )


class SignUpForm(forms.Form):
    """A new person's login, made from an invitation to the address it was sent to."""

    username = forms.CharField(
        label="Username",
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
        help_text="Letters, digits and @ . + - _ only.",
        error_messages={"required": "Choose a username to log in with."},
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        error_messages={"required": "Choose a password."},
    )
    password_again = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        error_messages={"required": "Type the password again."},
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_username(self) -> str:
        from django.contrib.auth.validators import UnicodeUsernameValidator

        username = str(self.cleaned_data["username"])
        UnicodeUsernameValidator(
            message="Use only letters, digits and @ . + - _ in a username."
        )(username)
        return username

    def clean(self) -> dict[str, Any]:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.password_validation import validate_password

        cleaned = super().clean() or {}
        password = cleaned.get("password")
        again = cleaned.get("password_again")
        if password and again and password != again:
            self.add_error("password_again", "The two passwords differ.")
        elif password:
            # Checked against the person's own name and address, as Django's forms do.
            candidate = get_user_model()(
                username=cleaned.get("username", ""), email=self.email
            )
            try:
                validate_password(password, candidate)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned
