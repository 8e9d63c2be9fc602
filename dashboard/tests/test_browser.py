"""End to end in real headless Chromium against the real server (``asgi_server``).

The browser's fake microphone plays the speech fixture; the echo peer (a number ending in
0001) returns what it hears 100 ms later, so the console must hear that speech back.
Browser steps run on the browser's thread (``tab.do``); checks of the database run here.
"""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import numpy as np
import pytest
from django.core.management import call_command

from calls.models import Call, CallState
from conftest import LiveServer
from dashboard.tests.conftest import SPEECH_WAV, Tab, screenshot, wait_js

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("engine", "fast_network", "tasks_in_process"),
]


def demo_owner() -> dict[str, Any]:
    """The demo account and its owner, as `bootstrap_demo` (and `make run`) make them."""
    out = io.StringIO()
    call_command("bootstrap_demo", "--json", stdout=out)
    return json.loads(out.getvalue())


# ---------------------------------------------------------------- browser steps


def log_in(page: Any, username: str, password: str) -> None:
    page.goto("/dashboard/")
    assert "/dashboard/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    assert page.locator("[data-testid=env-badge]").inner_text() == "TEST"
    wait_js(page, "window.__sbLive && window.__sbLive.connected")


def create_and_connect_a_session(page: Any, name: str) -> str:
    page.click("nav >> text=Sessions")
    page.fill("#id_display_name", name)
    page.click("text=Create session")
    page.click("text=Connect and pair")
    qr = page.locator("#qr-image")
    qr.wait_for()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert page.evaluate("document.getElementById('qr-image').naturalWidth") > 100
    return page.url.rstrip("/").split("/")[-1]


def see_the_qr_rotate(page: Any) -> None:
    first = page.locator("#qr-image").get_attribute("data-qr-created")
    wait_js(
        page,
        "first => document.getElementById('qr-image')?.dataset.qrCreated !== first",
        arg=first,
        timeout=10_000,
    )
    # The rotation reached the page over the event stream too (the panel may have been
    # refreshed with the new code by another session event first).
    assert wait_js(
        page,
        "window.__sbLive.events.some(e => e.type === 'auth.qr')",
        timeout=10_000,
    )
    screenshot(page, "sessions-qr")


def simulate_the_scan(page: Any) -> None:
    page.click("[data-testid=simulate-scan]")
    page.wait_for_selector("[data-testid=session-status]:text('ready')")


def call_the_echo_peer(page: Any, session_id: str) -> dict[str, Any]:
    page.click("text=Place a call")
    page.wait_for_url("**/dashboard/console/**")
    assert page.locator("#console-session").input_value() == session_id
    page.uncheck("#console-aec")  # the fake microphone is a file: no echo to cancel
    page.click("#console-start")
    wait_js(page, "window.__sbConsole.state === 'active'")
    wait_js(page, "window.__sbConsole.heardFrames > 500", timeout=25_000)
    assert page.locator("#heard-level").evaluate("m => m.value") > 0
    screenshot(page, "call-console")
    return page.evaluate("window.__sbConsole")


def mute_and_unmute(page: Any) -> dict[str, float]:
    page.click("#console-mute")
    wait_js(page, "window.__sbConsole.muted === true")
    page.wait_for_timeout(800)
    muted = page.evaluate("window.__sbConsole.heardRms")
    page.click("#console-mute")
    wait_js(page, "window.__sbConsole.muted === false")
    wait_js(page, "window.__sbConsole.heardRms > 0.01", timeout=10_000)
    return {"muted": muted, "unmuted": page.evaluate("window.__sbConsole.heardRms")}


def open_a_second_tab(page: Any, csp_violations: list[str]) -> Any:
    """Another tab of the same login (leaving the console would hang up its call)."""
    second = page.context.new_page()
    second.on("dialog", lambda dialog: dialog.accept())
    second.on(
        "console",
        lambda message: (
            csp_violations.append(f"{message.text} on {second.url}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    return second


def see_the_live_call_on_the_overview(page: Any) -> None:
    page.goto("/dashboard/")
    assert page.locator("[data-testid=live-count]").inner_text() == "1"
    assert page.locator("#recent-events code:text('call.state')").count() > 0
    screenshot(page, "overview")


def end_the_call_on_its_page(page: Any, call_id: str) -> None:
    page.click("nav >> text=Calls")
    page.click(f"tr[data-call-id='{call_id}'] a")
    page.wait_for_selector("[data-testid=call-state]:text('active')")
    page.click("text=End call")
    # No reload: the event stream brings the new state.
    page.wait_for_selector("[data-testid=call-state]:text('ended')")


def see_the_recordings(page: Any) -> int:
    try:
        page.wait_for_selector("table.recordings audio", timeout=10_000)
    except Exception:
        # The live update did not come (it rides the event stream); the recordings must
        # still be there for anyone who opens the page.
        print(
            page.evaluate(
                "JSON.stringify([window.__sbLive.connected, window.__sbLive.events.map(e => e.type)])"
            )
        )
        page.reload()
        page.wait_for_selector("table.recordings audio", timeout=10_000)
    screenshot(page, "call-detail")
    return page.locator("table.recordings audio").count()


# ---------------------------------------------------------------- checks


MAX_LAG = 100  # frames: 2 s


def best_lag(sent: np.ndarray, heard: np.ndarray) -> tuple[float, int]:
    """The lag (in 20 ms frames, up to 2 s) at which ``heard`` best follows ``sent``."""
    best, best_at = -1.0, 0
    for lag in range(min(MAX_LAG, len(heard) - len(sent) + 1)):
        window = heard[lag : lag + len(sent)]
        if sent.std() == 0 or window.std() == 0:
            continue
        r = float(np.corrcoef(sent, window)[0, 1])
        if r > best:
            best, best_at = r, lag
    return best, best_at


def echo_correlations(
    sent: np.ndarray, heard: np.ndarray, window: int = 100
) -> list[tuple[float, int]]:
    """For each 2 s of what we sent, how well (and how late) the heard audio follows it.

    Windowed, because the lag may creep by a frame whenever the network or the browser's
    clock leaves the server's playout buffer empty for a tick.
    """
    return [
        best_lag(sent[start : start + window], heard[start : start + window + MAX_LAG])
        for start in range(0, len(sent) - window - MAX_LAG, window // 2)
    ]


def test_owner_pairs_a_line_and_talks_to_the_echo_peer_from_the_browser(
    tab: Tab, settings: Any
) -> None:
    settings.SESSION_QR_TTL_S = 2
    demo = demo_owner()
    tab.do(log_in, demo["ownerUser"], demo["ownerPassword"])
    session_id = tab.do(create_and_connect_a_session, "Support line")
    tab.do(see_the_qr_rotate)
    tab.do(simulate_the_scan)

    heard = tab.do(call_the_echo_peer, session_id)
    assert heard["sentFrames"] > 250 and heard["heardPeakRms"] > 0.02, heard
    sent_envelope = np.array(heard["sentEnvelope"])
    heard_envelope = np.array(heard["heardEnvelope"])
    # What came back follows what we said (speech, with its pauses), a little later.
    windows = echo_correlations(sent_envelope, heard_envelope)
    assert len(windows) >= 3, windows
    correlation = float(np.median([r for r, _ in windows]))
    lag = int(np.median([lag for _, lag in windows]))
    # Unrelated speech envelopes correlate near 0; a busy machine's late ticks blur the
    # echo's envelope a little (0.73 seen), never to chance.
    assert correlation > 0.6, windows
    # Heard frames count from the socket's first; ours from the answer: the echo is at
    # least 100 ms (5 frames) behind, plus the time the answer took to reach the page.
    assert 5 <= lag < MAX_LAG, windows
    # Live speech does not queue on the server: a page streaming in real time leaves
    # nothing after the media clock's reads and so gets no `buffer` frames, and any that
    # a network hiccup caused end with the queue back under the console's 200 ms limit.
    history = heard["bufferHistory"]
    assert not history or history[-1] <= 200, history

    # Muted, the peer hears silence, so the echo goes quiet; unmuted, it comes back.
    levels = tab.do(mute_and_unmute)
    assert levels["muted"] < 0.002 < 0.01 < levels["unmuted"], levels

    call_id = heard["callId"]
    second = tab.do(open_a_second_tab, tab.csp_violations)
    tab.thread.run(see_the_live_call_on_the_overview, second)
    tab.thread.run(end_the_call_on_its_page, second, call_id)
    call = Call.objects.get(public_id=call_id)
    assert call.state == CallState.ENDED and call.end_reason == "completed"
    assert tab.thread.run(see_the_recordings, second) == 3  # inbound, outbound, mixed


def create_a_key(page: Any, name: str) -> str:
    page.goto("/dashboard/")
    page.click("nav >> text=API keys")
    page.fill("#id_name", name)
    page.click("text=Create key")
    secret = page.locator("[data-testid=new-key]").input_value()
    page.click("button[data-copy]")
    page.wait_for_selector("button:text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot(page, "api-keys")
    return secret


def revoke_the_key(page: Any, name: str) -> None:
    page.goto("/dashboard/keys/")
    assert page.locator("[data-testid=new-key]").count() == 0  # shown once only
    row = page.locator("tr", has_text=name)
    assert "never" not in row.inner_text()  # last used: by the API call just now
    row.locator("text=Revoke").click()
    page.wait_for_selector("text=revoked;")


def test_a_key_made_in_the_browser_works_in_the_api_until_it_is_revoked(
    tab: Tab, asgi_server: LiveServer
) -> None:
    demo = demo_owner()
    tab.do(log_in, demo["ownerUser"], demo["ownerPassword"])
    secret = tab.do(create_a_key, "voice agent")
    assert secret.startswith("sb_test_")
    api = httpx.Client(
        base_url=asgi_server.url, headers={"Authorization": f"Bearer {secret}"}
    )
    assert api.get("/api/v1/environment").status_code == 200
    tab.do(revoke_the_key, "voice agent")
    refused = api.get("/api/v1/environment")
    assert refused.status_code == 401
    assert refused.json()["code"] == "revoked_api_key"


def upload_an_asset(page: Any) -> dict[str, Any]:
    page.click("nav >> text=Audio assets")
    page.set_input_files("#id_audio", str(SPEECH_WAV))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#upload-status:text('Uploaded')")
    row = page.locator("tr", has_text=SPEECH_WAV.name)
    row.locator("[data-testid=asset-status]:text('ready')").wait_for()
    screenshot(page, "assets")
    return {
        "progress": page.locator("#upload-progress").evaluate("p => p.value"),
        "row": row.inner_text(),
        "src": row.locator("audio").get_attribute("src"),
        "cookies": {c["name"]: c["value"] for c in page.context.cookies()},
    }


def test_an_audio_file_uploaded_in_the_browser_becomes_ready_to_play(
    tab: Tab, asgi_server: LiveServer
) -> None:
    demo = demo_owner()
    tab.do(log_in, demo["ownerUser"], demo["ownerPassword"])
    uploaded = tab.do(upload_an_asset)
    assert uploaded["progress"] == 100
    assert "0:09" in uploaded["row"]  # 9.9 s of speech
    wav = httpx.get(asgi_server.url + uploaded["src"], cookies=uploaded["cookies"])
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"


def run_the_worklets_at_48_khz(page: Any) -> dict[str, Any]:
    """Render one second through each worklet in a 48 kHz context, offline."""
    page.goto("/dashboard/login/")
    return page.evaluate(
        """async (url) => {
          const rate = 48000;
          const capturing = new OfflineAudioContext(1, rate, rate);
          await capturing.audioWorklet.addModule(url);
          const tone = new OscillatorNode(capturing, { frequency: 440 });
          const capture = new AudioWorkletNode(capturing, "sb-capture");
          const frames = [];
          capture.port.onmessage = (event) => frames.push(Array.from(event.data));
          tone.connect(capture).connect(capturing.destination);
          tone.start();
          await capturing.startRendering();
          await new Promise((resolve) => setTimeout(resolve, 300));

          const playing = new OfflineAudioContext(1, rate, rate);
          await playing.audioWorklet.addModule(url);
          const playback = new AudioWorkletNode(playing, "sb-playback", {
            numberOfInputs: 0,
            outputChannelCount: [1],
            processorOptions: { prebufferMs: 60, maxBufferMs: 1500 },
          });
          playback.connect(playing.destination);
          const wire = new Float32Array(16000);
          for (let i = 0; i < wire.length; i++) wire[i] = 0.5 * Math.sin(2 * Math.PI * 440 * i / 16000);
          // Deliver the audio while rendering is held after its first quantum: a message
          // posted just before startRendering() may land after an offline render ends.
          playing.suspend(128 / rate).then(async () => {
            playback.port.postMessage(wire);
            await new Promise((resolve) => setTimeout(resolve, 300));
            await playing.resume();
          });
          const rendered = await playing.startRendering();
          return { frames, played: Array.from(rendered.getChannelData(0)) };
        }""",
        "/static/dashboard/js/console-worklets.js",
    )


def tone_of(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """The frequency (from zero crossings) and RMS of a steady tone."""
    crossings = np.count_nonzero(np.diff(np.signbit(samples)))
    return crossings / 2 / (len(samples) / rate), float(np.sqrt(np.mean(samples**2)))


def test_the_console_worklets_resample_when_the_browser_runs_at_48_khz(
    tab: Tab,
) -> None:
    rendered = tab.do(run_the_worklets_at_48_khz)
    frames = rendered["frames"]
    # One second of microphone at 48 kHz: 50 frames of 20 ms at 16 kHz, same tone.
    assert 48 <= len(frames) <= 50 and {len(f) for f in frames} == {320}
    sent = np.concatenate([np.array(f) for f in frames])[1600:]
    frequency, rms = tone_of(sent, 16000)
    assert abs(frequency - 440) < 3 and abs(rms - 0.707) < 0.02, (frequency, rms)
    # 16 kHz from the socket plays at 48 kHz: the same tone, three times the samples.
    played = np.array(rendered["played"])
    heard = played[np.flatnonzero(np.abs(played) > 0.01)[0] :][:24000]
    frequency, rms = tone_of(heard, 48000)
    assert len(heard) == 24000
    assert abs(frequency - 440) < 3 and abs(rms - 0.354) < 0.02, (frequency, rms)
