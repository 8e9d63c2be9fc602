"""Dashboard fixtures: users of each role in the tenant's account, logged-in browsers."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import Environment, Membership
from accounts.selectors import DASHBOARD_ENVIRONMENT_KEY
from calls import services as call_services
from calls.carriers.simulator import helpers as simulator_helpers
from calls.models import Session
from calls.tests.conftest import engine, fast_network
from conftest import LiveServer, Tenant

PASSWORD = "correct-horse-battery-staple"


def make_user(username: str, tenant: Tenant | None, role: str) -> Any:
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    if tenant is not None:
        Membership.objects.create(user=user, account=tenant.account, role=role)
    return user


def browser_for(user: Any, environment: Environment | None = None) -> Client:
    """A test client logged in as ``user``, looking at ``environment`` (if given)."""
    client = Client()
    client.force_login(user)
    if environment is not None:
        session = client.session
        session[DASHBOARD_ENVIRONMENT_KEY] = str(environment.public_id)
        session.save()
    return client


@pytest.fixture
def as_role(tenant: Tenant) -> Callable[..., Client]:
    """``as_role("member")``: a browser of a new user with that role, on the test env."""
    made: dict[str, Any] = {}

    def login(role: str, environment: Environment | None = None) -> Client:
        if role not in made:
            made[role] = make_user(f"{role}-{len(made)}", tenant, role)
        return browser_for(made[role], environment or tenant.test)

    return login


@pytest.fixture
def owner(as_role: Callable[..., Client]) -> Client:
    return as_role("owner")


@pytest.fixture
def member(as_role: Callable[..., Client]) -> Client:
    return as_role("member")


def paired_session(environment: Environment, name: str = "Support line") -> Session:
    """A session that is paired and connected (through the services, as the API does)."""
    session = call_services.session_create(environment=environment, display_name=name)
    session = call_services.session_connect(session=session)
    return simulator_helpers.scan(session)


# ---------------------------------------------------------------- the browser

# The call engine's fixtures, for tests that place calls.
__all__ = ["engine", "fast_network"]

CHROMIUM = Path(os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium"))
# CI sets this: a missing browser fails the run instead of skipping its tests.
REQUIRE_BROWSER = os.environ.get("SWITCHBOARD_REQUIRE_BROWSER") == "1"
REPO = Path(__file__).resolve().parents[2]
AUDIO_FIXTURES = REPO / "fixtures" / "audio"
SPEECH_WAV = AUDIO_FIXTURES / "speech_16k_mono_s16.wav"
SCREENSHOTS = REPO / "docs" / "screenshots"

_browser_not_run: list[str] = []


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return (
            f"Chromium not found at {CHROMIUM}: the dashboard's browser tests did not "
            "run. Install it (Debian: `apt-get install -y chromium`) or point "
            "SWITCHBOARD_CHROMIUM at a Chromium binary."
        )
    if find_spec("playwright") is None:
        return (
            "The playwright package is missing: the dashboard's browser tests did not "
            'run. `pip install -e ".[dev]"` installs it.'
        )
    if not SPEECH_WAV.exists():
        return f"The audio fixture {SPEECH_WAV} is missing: browser tests did not run."
    return None


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    f"--use-file-for-fake-audio-capture={SPEECH_WAV}",
    "--autoplay-policy=no-user-gesture-required",
]


class BrowserThread:
    """Playwright (sync API) on a thread of its own.

    Playwright's sync API keeps an event loop running on the thread that drives it, and
    Django refuses database access on a thread with a running loop. So the browser lives
    here and the test's own thread stays free for the ORM: ``run(step, …)`` executes a
    step on the browser's thread and returns its result (or raises its exception).
    """

    def __init__(self) -> None:
        self._steps: queue.Queue[Any] = queue.Queue()
        self._ready: Future[Any] = Future()
        self._thread = threading.Thread(
            target=self._main, name="playwright", daemon=True
        )
        self._thread.start()
        self.browser = self._ready.result(timeout=60)

    def _main(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                self._ready.set_result(browser)
                while (item := self._steps.get()) is not None:
                    step, args, done = item
                    try:
                        done.set_result(step(*args))
                    except BaseException as error:
                        done.set_exception(error)
                browser.close()
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(error)

    def run(self, step: Callable[..., Any], *args: Any) -> Any:
        done: Future[Any] = Future()
        self._steps.put((step, args, done))
        return done.result(timeout=180)

    def stop(self) -> None:
        self._steps.put(None)
        self._thread.join(timeout=30)


@pytest.fixture(scope="session")
def chromium() -> Iterator[BrowserThread]:
    """Headless Chromium (the system's, never a downloaded one) with a fake microphone
    that plays the speech fixture."""
    missing = _browser_missing()
    if missing:
        if REQUIRE_BROWSER:
            pytest.fail(f"{missing} (SWITCHBOARD_REQUIRE_BROWSER=1)", pytrace=False)
        _browser_not_run.append(missing)
        pytest.skip(missing)
    browser = BrowserThread()
    yield browser
    browser.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _browser_not_run:
        terminalreporter.write_sep(
            "!", "BROWSER TESTS DID NOT RUN", yellow=True, bold=True
        )
        terminalreporter.write_line(_browser_not_run[0], yellow=True)


class Tab:
    """One page in a fresh browser profile; ``tab.do(step, …)`` runs ``step(page, …)``."""

    def __init__(self, thread: BrowserThread, base_url: str) -> None:
        self.thread = thread
        self.page = thread.run(self._open, base_url)

    def _open(self, base_url: str) -> Any:
        context = self.thread.browser.new_context(
            base_url=base_url,
            permissions=["microphone", "clipboard-read", "clipboard-write"],
            viewport={"width": 1280, "height": 860},
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # confirmations: yes
        # The pages run under their Content-Security-Policy: anything it blocks is a bug.
        self.csp_violations: list[str] = []
        page.on(
            "console",
            lambda message: (
                self.csp_violations.append(
                    f"{message.text} at {message.location} on {page.url}"
                )
                if "Content Security Policy" in message.text
                else None
            ),
        )
        return page

    def do(self, step: Callable[..., Any], *args: Any) -> Any:
        return self.thread.run(step, self.page, *args)

    def close(self) -> None:
        self.thread.run(lambda: self.page.context.close())


def wait_js(
    page: Any, expression: str, timeout: float = 15_000, arg: Any = None
) -> Any:
    """Wait until a JavaScript expression is truthy and return its value.

    Polls with ``page.evaluate`` (run by the browser's debugging protocol, which the
    page's Content-Security-Policy does not govern), not ``wait_for_function``, whose
    in-page polling evaluates strings and is refused under ``script-src 'self'``.
    """
    deadline = time.monotonic() + timeout / 1000
    while True:
        value = page.evaluate(expression, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression!r} stayed falsy for {timeout / 1000:g} s")
        page.wait_for_timeout(50)


@pytest.fixture
def tab(chromium: BrowserThread, asgi_server: LiveServer) -> Iterator[Tab]:
    opened = Tab(chromium, asgi_server.url)
    yield opened
    violations = list(getattr(opened, "csp_violations", []))
    opened.close()
    assert violations == [], violations


@pytest.fixture
def tasks_in_process() -> Iterator[None]:
    """Run Celery tasks (decoding, recording finalisation) in this process, as embedded."""
    from config.celery_app import app as celery_app

    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def screenshot(tab: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
