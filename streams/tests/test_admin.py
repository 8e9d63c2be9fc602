"""Staff see every stream's state, frame counts and last error (never header values)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from calls.models import Call, CallState, Direction, Session
from conftest import Tenant
from streams.models import Stream, StreamState


def test_staff_see_state_counts_and_last_error_but_not_header_values(
    tenant: Tenant, client: Any
) -> None:
    session = Session.objects.create(environment=tenant.test, display_name="line")
    call = Call.objects.create(
        environment=tenant.test,
        session=session,
        peer_address="15550000001@s.whatsapp.net",
        direction=Direction.OUTGOING,
        state=CallState.ACTIVE,
    )
    stream = Stream.objects.create(
        environment=tenant.test,
        call=call,
        url="wss://bot.example.com/s",
        type="oneway",
        channel="both",
        format="pcm16_16000",
        dialect="wavix",
        headers={"Authorization": "Bearer very-secret-token"},
        state=StreamState.FAILED,
        reason="connect_failed",
        last_error="the receiver answered the handshake with HTTP 503",
        frames_sent=1234,
        frames_dropped=56,
        stopped_at=timezone.now(),
    )
    user = get_user_model().objects.create_superuser(
        "staff", "s@example.com", "pw-1234567"
    )
    client.force_login(user)
    listing = client.get("/admin/streams/stream/?state=failed").content.decode()
    assert str(stream.public_id) in listing
    assert "1234" in listing and "56" in listing and "HTTP 503" in listing
    detail = client.get(f"/admin/streams/stream/{stream.pk}/change/").content.decode()
    assert "Authorization" in detail and "very-secret-token" not in detail
    assert "connect_failed" in detail
