"""In real headless Chromium, under the page's CSP: the recordings page shows a recording's
length and waveform before anyone presses play, and playing it loads the whole WAV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import Tenant
from dashboard.tests.conftest import PASSWORD, Tab, make_user, wait_js
from dashboard.tests.test_browser import log_in
from dashboard.tests.test_narrow_screen import PHONE, fits_the_screen
from recordings import services as recording_services
from recordings.models import Recording
from recordings.tests.conftest import ended_call, spool_audio, tone

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

SECONDS = 2.5


def a_recorded_call(tenant: Tenant) -> dict[str, Recording]:
    """A call finalised as the server does it: 2.5 s, the peer's tone in the middle."""
    call = ended_call(tenant.test)
    quiet = np.zeros(int(SECONDS * 16_000 / 3), dtype=np.float32)
    inbound = np.concatenate([quiet, tone(SECONDS - 2 * len(quiet) / 16_000), quiet])
    spool_audio(call, inbound, np.zeros(len(inbound), dtype=np.float32))
    recording_services.recordings_finalise(call_id=str(call.public_id))
    return {r.kind: r for r in Recording.objects.filter(call=call)}


def see_the_recording_before_playing(page: Any, recording_id: str) -> dict[str, Any]:
    page.click("nav >> text=Recordings")
    page.wait_for_url("**/dashboard/recordings/")
    row = page.locator(f"tr[data-recording-id='{recording_id}']")
    svg = row.locator("svg.waveform")
    svg.wait_for()
    box = svg.bounding_box()
    audio = row.locator("audio")
    return {
        "length": row.locator("[data-testid=recording-duration]").inner_text(),
        "lengthVisible": row.locator("[data-testid=recording-duration]").is_visible(),
        "svgBox": box,
        "bars": svg.locator("path").get_attribute("d").count("M"),
        # preload="none": nothing of the WAV is fetched until play.
        "before": audio.evaluate(
            "a => ({duration: a.duration, readyState: a.readyState})"
        ),
    }


def press_play(page: Any, recording_id: str) -> dict[str, Any]:
    audio = page.locator(f"tr[data-recording-id='{recording_id}'] audio")
    # The play button is the first of the native controls, at their left end.
    box = audio.bounding_box()
    audio.click(position={"x": 16, "y": box["height"] / 2})
    wait_js(
        page,
        "id => { const a = document.querySelector(`tr[data-recording-id='${id}'] audio`);"
        " return Number.isFinite(a.duration) && a.currentTime > 0; }",
        arg=recording_id,
    )
    return audio.evaluate(
        "a => ({duration: a.duration, error: a.error && a.error.code,"
        " src: a.currentSrc})"
    )


def fits_a_phone(page: Any) -> dict[str, Any]:
    page.set_viewport_size(PHONE)
    page.reload()
    return fits_the_screen(page)


def test_a_recording_shows_its_length_and_waveform_and_plays_in_full(
    tab: Tab, tenant: Tenant, settings: Any, tmp_path: Path
) -> None:
    settings.RECORDING_SPOOL_DIR = tmp_path / "spool"
    owner = make_user("recordings-owner", tenant, "owner")
    recordings = a_recorded_call(tenant)
    mixed = recordings["mixed"]
    assert mixed.duration_ms == 2500
    assert mixed.waveform is not None and len(mixed.waveform) == 400
    recording_id = str(mixed.public_id)

    tab.do(log_in, owner.username, PASSWORD)
    seen = tab.do(see_the_recording_before_playing, recording_id)
    assert seen["length"] == "0:02" and seen["lengthVisible"], seen
    assert seen["bars"] == 400, seen
    assert seen["svgBox"]["width"] >= 200 and seen["svgBox"]["height"] >= 20, seen
    assert seen["before"]["readyState"] == 0, seen

    played = tab.do(press_play, recording_id)
    assert played["error"] is None, played
    assert played["src"].endswith(f"/dashboard/recordings/{recording_id}/audio")
    assert abs(played["duration"] - SECONDS) < 0.1, played
    # On a phone the table scrolls sideways in its own box; the page keeps its width.
    tab.do(fits_a_phone)
