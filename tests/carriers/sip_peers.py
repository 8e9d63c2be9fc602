"""Real SIP peers on loopback for the SIP trunk carrier's tests.

Debian's baresip 1.0.0 (package ``baresip-core``) and SIPp 3.6.1 (package
``sip-tester``). Each launcher is a context manager that picks free loopback ports,
writes its files into a directory of its own, waits until the peer answers (polling,
never a fixed sleep) and stops it on the way out: SIGTERM to its process group, SIGKILL
after a grace period. Every process also runs under ``timeout(1)``, so a test run that
dies without cleaning up leaves nothing running for long.

- ``echo_peer()``: a baresip that answers calls to its users and sends each call's audio
  (and DTMF) back: modules ``echo`` + ``aubridge``.
- ``caller_peer()``: a baresip driven over ``ctrl_tcp`` that dials, answers, hangs up,
  registers and presses DTMF keys (``cons`` console); it sends a 440 Hz tone.
- ``sipp()``: one of the scenarios in ``sipp/`` as a UAS (registrar or callee); each
  file's comment says what it does, which keys it takes and what it logs.

Tests call ``require_peers()`` first: it skips when a peer is missing, or fails when
``SWITCHBOARD_REQUIRE_SIP_PEERS=1`` (CI) says the peers must run.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"
SCENARIOS = Path(__file__).resolve().parent / "sipp"
BARESIP_MODULES = Path("/usr/lib/baresip/modules")
REQUIRE_ENV = "SWITCHBOARD_REQUIRE_SIP_PEERS"
# Upper bound on a peer's life (timeout(1)) should its test never reach the cleanup.
LIFETIME = 120.0
# SIGTERM lets baresip send its BYEs and SIPp close its logs; past this, SIGKILL.
GRACE = 3.0
READY_TIMEOUT = 10.0
# RTP ranges lie below Linux's ephemeral range (32768-60999), where the SIP ports come
# from, so one peer's media never takes another one's signalling port.
RTP_RANGE = (16384, 32768)
RTP_BLOCK = 200
# baresip's console takes this byte as "key released", which ends the DTMF event.
KEYCODE_REL = b"\x04"
DTMF_PCAP = "dtmf.pcap"
TRACE_FILES = ("messages.log", "actions.log", "errors.log")
DTMF_EVENTS = (
    {str(n): n for n in range(10)}
    | {"*": 10, "#": 11}
    | {key: 12 + n for n, key in enumerate("ABCD")}
)


class PeerError(RuntimeError):
    """A peer did not start, did not answer, or refused a command."""


# ------------------------------------------------------------------ availability


def peers_missing() -> list[str]:
    """Name each peer this machine lacks (empty when both are installed)."""
    missing = []
    if shutil.which("baresip") is None or not BARESIP_MODULES.is_dir():
        missing.append("baresip (Debian package baresip-core)")
    if shutil.which("sipp") is None:
        missing.append("sipp (Debian package sip-tester)")
    return missing


def peers_available() -> bool:
    return not peers_missing()


def pcap_playback_allowed() -> bool:
    """Whether SIPp may play RTP from a pcap: it sends through a raw socket."""
    if os.geteuid() == 0:
        return True
    binary = shutil.which("sipp")
    try:
        return binary is not None and bool(os.getxattr(binary, "security.capability"))
    except OSError:
        return False


def require_peers(*, pcap_playback: bool = False) -> None:
    """Skip the calling test when a peer is missing, or fail it when CI requires them.

    ``pcap_playback=True`` also requires what ``invite_dtmf.xml`` needs: root, or
    CAP_NET_RAW on the sipp binary.
    """
    missing = peers_missing()
    if missing:
        message = (
            f"SIP test peers missing: {', '.join(missing)}. The SIP carrier's tests "
            "against real peers did not run; `make peers` installs them (Debian, as "
            "root)."
        )
    elif pcap_playback and not pcap_playback_allowed():
        message = (
            "SIPp cannot play RTP from a pcap here: it needs a raw socket (root, or "
            "CAP_NET_RAW on the sipp binary). This test did not run."
        )
    else:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(message)


# ------------------------------------------------------------------ ports, processes


def _bindable(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


_handed_out: set[int] = set()


def free_port(*, also: Sequence[int] = ()) -> int:
    """A loopback port free for UDP and TCP, and for UDP at each offset in ``also``.

    The port above it must be free for TCP too (baresip puts SIP over TLS there), and
    neither is ever handed out twice by this process, so a peer's own ports (SIP, TLS,
    ctrl_tcp, console) never collide.
    """
    if not _handed_out:
        # Switchboard's own SIP listener in this process (it may not be bound yet).
        with suppress(Exception):
            from django.conf import settings

            own = int(settings.SIP_BIND.rsplit(":", 1)[1])
            _handed_out.update({own, own + 1})
    # Below Linux's ephemeral range (32768 and up): no outgoing connection takes the
    # port between this choice and the peer binding it (Switchboard's own listener
    # takes 13000-19999, config/settings/test.py).
    for port in random.sample(range(20000, 29990), 300):
        taken = {port, port + 1, *(port + offset for offset in also)}
        if taken & _handed_out:
            continue
        if (
            _bindable(port, socket.SOCK_DGRAM)
            and _bindable(port, socket.SOCK_STREAM)
            and _bindable(port + 1, socket.SOCK_STREAM)
            and all(_bindable(port + offset, socket.SOCK_DGRAM) for offset in also)
        ):
            _handed_out.update(taken)
            return port
    raise PeerError("no free loopback port")


def _udp_bound(port: int) -> bool:
    # /proc rather than a test bind, which could take the port from a starting peer.
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as sockets:
            for line in itertools.islice(sockets, 1, None):
                if int(line.split()[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.25):
            return True
    except OSError:
        return False


def _wait(
    condition: Callable[[], Any], what: str, process: Process, timeout: float
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if not process.alive():
            raise PeerError(f"{process.name} exited before {what}:\n{process.output()}")
        time.sleep(0.02)
    raise PeerError(f"{process.name}: no {what} after {timeout} s:\n{process.output()}")


class Process:
    """One peer process under ``timeout(1)``, in a process group of its own."""

    def __init__(
        self, name: str, args: Sequence[str], workdir: Path, lifetime: float
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.output_path = workdir / f"{name}.out"
        self.final_output: str | None = None
        with self.output_path.open("wb") as sink:
            self.popen = subprocess.Popen(
                ["timeout", "--kill-after=2", f"{lifetime:g}", *args],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        """What the process wrote to stdout and stderr (so far, or in all)."""
        if self.final_output is not None:
            return self.final_output
        return self.output_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        """End the process and keep its output readable after its directory goes."""
        if self.popen.poll() is None:
            # The group holds timeout(1) and the peer: both get the signal.
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(GRACE)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(GRACE)
        if self.final_output is None:
            self.final_output = self.output()

    def _signal_group(self, sig: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


@contextmanager
def _started(
    name: str, args: Sequence[str], workdir: Path, lifetime: float
) -> Iterator[Process]:
    process = Process(name, args, workdir, lifetime)
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def _workdir(prefix: str, under: Path | None) -> Iterator[Path]:
    """A fresh directory: kept under ``under`` (e.g. ``tmp_path``), else removed."""
    if under is not None:
        yield Path(tempfile.mkdtemp(prefix=prefix, dir=under))
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as path:
        yield Path(path)


def _options_status(port: int, user: str) -> int | None:
    """Send one SIP OPTIONS to ``user`` and return the status code of the answer.

    baresip answers 200 only once its accounts are loaded (404 before): its SIP port
    is bound earlier, so this, not the port, says the peer is ready.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        probe.connect((HOST, port))
        probe.settimeout(0.25)
        local = f"{HOST}:{probe.getsockname()[1]}"
        request = (
            f"OPTIONS sip:{user}@{HOST}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{local}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{user}@{HOST}:{port}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@{HOST}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            f"Contact: <sip:probe@{local}>\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        try:
            probe.send(request.encode())
            answer = probe.recv(65535)
        except OSError:  # refused (nothing bound yet) or no answer in time
            return None
    status = answer.split(b"\r\n", 1)[0].split(b" ")
    return int(status[1]) if len(status) > 1 and status[1].isdigit() else None


# ------------------------------------------------------------------ baresip


def _baresip_config(sip_port: int, *lines: str) -> str:
    rtp_low = random.randrange(RTP_RANGE[0], RTP_RANGE[1] - RTP_BLOCK, 2)
    return "\n".join(
        [
            "poll_method epoll",
            f"sip_listen {HOST}:{sip_port}",
            # baresip 1.0 fails on `lo` ("could not get IPv4 address"); the address works.
            f"net_interface {HOST}",
            "net_af ipv4",
            f"rtp_ports {rtp_low}-{rtp_low + RTP_BLOCK - 1}",
            "rtp_timeout 0",
            "call_max_calls 64",
            f"module_path {BARESIP_MODULES}",
            "module g711.so",
            "module g722.so",
            "module opus.so",
            "module aubridge.so",
            *lines,
            "",
        ]
    )


def _account(
    user: str, port: int, codecs: Sequence[str], params: Sequence[str] = ()
) -> str:
    # answermode=manual on the echo peer too: with `auto`, baresip 1.0 answers before
    # the echo module sees the call, and every call then shares one audio bridge.
    return ";".join(
        [
            f"<sip:{user}@{HOST}:{port}>",
            "regint=0",
            "answermode=manual",
            f"audio_codecs={','.join(codecs)}",
            *params,
        ]
    )


def _baresip_home(workdir: Path, config: str, accounts: Sequence[str]) -> Path:
    """The ``-f`` directory: baresip 1.0 wants config, accounts and contacts in it."""
    home = workdir / "baresip"
    home.mkdir()
    (home / "config").write_text(config)
    (home / "accounts").write_text("\n".join(accounts) + "\n")
    (home / "contacts").write_text("")
    return home


class BaresipPeer:
    """What every baresip peer offers: its address and its console output."""

    def __init__(self, process: Process, user: str, port: int) -> None:
        self.process = process
        self.user = user
        self.port = port

    @property
    def host_port(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def uri(self) -> str:
        return self.uri_for(self.user)

    def uri_for(self, user: str) -> str:
        return f"sip:{user}@{self.host_port}"

    def log(self) -> str:
        """baresip's output so far (it writes each line as it happens)."""
        return self.process.output()

    def dtmf_received(self) -> str:
        """The RFC 4733 keys this peer received, in order (``received event: '5'``)."""
        return "".join(re.findall(r"received event: '(.)' \(end=1\)", self.log()))


class EchoPeer(BaresipPeer):
    """An answering baresip that sends back the audio and DTMF it receives."""

    def __init__(
        self, process: Process, user: str, port: int, aliases: Sequence[str]
    ) -> None:
        super().__init__(process, user, port)
        self.aliases = tuple(aliases)


@contextmanager
def echo_peer(
    codecs: Sequence[str] = ("pcmu", "pcma", "g722/16000/1", "opus/48000/2"),
    user: str = "echo",
    *,
    aliases: Sequence[str] = (),
    lifetime: float = LIFETIME,
    workdir: Path | None = None,
) -> Iterator[EchoPeer]:
    """Run an echo peer that answers calls to ``user`` and to each of ``aliases``.

    ``peer.uri`` is ``sip:echo@127.0.0.1:PORT``; ``peer.uri_for("+15551234567")``
    reaches the same echo when that number is one of ``aliases``. Debian's baresip 1.0
    has no catch-all account: it ignores ``catchall=yes`` and answers an unknown user
    ``404 Not Found`` (only its b2bua module sets catch-all, and that relays calls
    instead of answering them), so each alias is one more account on the same port.
    Each call gets its own audio bridge: concurrent calls do not hear each other.
    """
    port = free_port()
    config = _baresip_config(
        port,
        "audio_player aubridge,nil",
        "audio_source aubridge,nil",
        "audio_alert aubridge,nil",
        "jitter_buffer_delay 5-10",
        "module_app account.so",
        "module_app echo.so",
    )
    accounts = [_account(name, port, codecs) for name in (user, *aliases)]
    with _workdir("echo-peer-", workdir) as directory:
        home = _baresip_home(directory, config, accounts)
        with _started("echo", ["baresip", "-f", str(home)], directory, lifetime) as p:
            _wait(
                lambda: _options_status(port, user) == 200, "answer", p, READY_TIMEOUT
            )
            yield EchoPeer(p, user, port, aliases)


class CallerPeer(BaresipPeer):
    """A baresip that calls, answers and registers on command, over ``ctrl_tcp``.

    ``events`` lists every ctrl_tcp event in arrival order, as baresip sends it: a dict
    such as ``{"type": "CALL_CLOSED", "param": "486 Busy Here", "peeruri": …, "id": …}``.
    """

    def __init__(
        self, process: Process, user: str, port: int, ctrl_port: int, console_port: int
    ) -> None:
        super().__init__(process, user, port)
        self.console_port = console_port
        self.events: list[dict[str, Any]] = []
        self._mark = 0
        self._changed = threading.Condition()
        self._replies: dict[str, dict[str, Any]] = {}
        self._tokens = itertools.count(1)
        self._ctrl = socket.create_connection((HOST, ctrl_port), timeout=2)
        self._ctrl.settimeout(None)
        self._reader = threading.Thread(
            target=self._read, name=f"caller-peer-{port}", daemon=True
        )
        self._reader.start()

    def dial(self, uri: str) -> dict[str, Any]:
        """Call ``uri``; from here on ``wait_event`` looks at this call's events."""
        self._set_mark()
        return self.command("dial", uri)

    def hangup(self) -> dict[str, Any]:
        return self.command("hangup")

    def accept(self) -> dict[str, Any]:
        return self.command("accept")

    def register(
        self,
        registrar: str,
        user: str,
        password: str,
        *,
        domain: str = "trunk.test",
        expires: int = 60,
    ) -> str:
        """Add an account that registers at ``registrar`` (host:port); return its AOR.

        Then ``wait_event("REGISTER_OK")`` or ``("REGISTER_FAIL")`` (param
        ``"403 Forbidden"``); baresip refreshes at 90 % of ``expires``.
        """
        self._set_mark()
        aor = f"sip:{user}@{domain}"
        self.command(
            "uanew",
            f'<{aor}>;auth_pass={password};outbound="sip:{registrar}";'
            f"regint={expires};answermode=manual",
        )
        return aor

    def unregister(self, aor: str) -> None:
        """Remove the account: baresip sends its REGISTER with expires=0."""
        self.command("uadel", aor)

    def command(
        self, name: str, params: str = "", timeout: float = 5.0
    ) -> dict[str, Any]:
        """Send one ctrl_tcp command; return baresip's reply, or raise if not ``ok``."""
        token = str(next(self._tokens))
        body = json.dumps({"command": name, "params": params, "token": token}).encode()
        self._ctrl.sendall(b"%d:%s," % (len(body), body))
        with self._changed:
            if not self._changed.wait_for(lambda: token in self._replies, timeout):
                raise PeerError(f"caller peer: no reply to {name!r} in {timeout} s")
            reply = self._replies.pop(token)
        if not reply.get("ok"):
            raise PeerError(f"caller peer refused {name} {params!r}: {reply}")
        return reply

    def send_dtmf(self, digits: str, *, press: float = 0.12, gap: float = 0.08) -> None:
        """Press each key during the call: one RFC 4733 event each, ``press`` s long."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as console:
            for digit in digits:
                console.sendto(digit.encode(), (HOST, self.console_port))
                time.sleep(press)
                console.sendto(KEYCODE_REL, (HOST, self.console_port))
                time.sleep(gap)

    def wait_event(
        self, kind: str, timeout: float = 5.0, *, since: int | None = None
    ) -> dict[str, Any]:
        """The first event of type ``kind`` at index ``since`` of ``events`` or later.

        ``since`` defaults to where the latest ``dial()`` or ``register()`` began. To
        wait for what another action causes, take ``len(peer.events)`` before it.
        """
        start = self._mark if since is None else since

        def found() -> dict[str, Any] | None:
            return next((e for e in self.events[start:] if e.get("type") == kind), None)

        with self._changed:
            event = self._changed.wait_for(found, timeout)
        if event is None:
            seen = [e.get("type") for e in self.events[start:]]
            raise PeerError(f"caller peer: no {kind} in {timeout} s, only {seen}")
        return event

    def received_wav(self) -> Path:
        """The WAV of the latest call's received audio, complete once the call closed.

        It lives in the peer's directory: pass ``workdir`` to keep it past the peer.
        """
        return self._recording("dec")

    def sent_wav(self) -> Path:
        """The WAV of the latest call's sent audio, like ``received_wav``."""
        return self._recording("enc")

    def close(self) -> None:
        with suppress(OSError):
            self._ctrl.shutdown(socket.SHUT_RDWR)
        self._ctrl.close()
        self._reader.join(timeout=2)

    def _recording(self, direction: str) -> Path:
        # sndfile names its files by the second a call's audio started.
        files = sorted((self.process.workdir / "audio").glob(f"*-{direction}.wav"))
        if not files:
            raise PeerError("caller peer: no call audio recorded")
        return files[-1]

    def _set_mark(self) -> None:
        with self._changed:
            self._mark = len(self.events)

    def _read(self) -> None:
        buffer = b""
        while chunk := self._recv():
            buffer += chunk
            # Netstrings: b"<length>:<json>,"
            while b":" in buffer:
                length, rest = buffer.split(b":", 1)
                if len(rest) < int(length) + 1:
                    break
                message = json.loads(rest[: int(length)])
                buffer = rest[int(length) + 1 :]
                with self._changed:
                    if message.get("event"):
                        self.events.append(message)
                    elif message.get("response"):
                        self._replies[str(message.get("token"))] = message
                    self._changed.notify_all()

    def _recv(self) -> bytes:
        try:
            return self._ctrl.recv(65536)
        except OSError:
            return b""


@contextmanager
def caller_peer(
    codecs: Sequence[str] = ("pcmu", "pcma"),
    user: str = "caller",
    *,
    account_params: Sequence[str] = (),
    lifetime: float = LIFETIME,
    workdir: Path | None = None,
) -> Iterator[CallerPeer]:
    """Run a caller peer, ``sip:caller@127.0.0.1:PORT``, whose audio is a 440 Hz tone.

    ``account_params`` go on its account line, e.g. ``("auth_user=alice",
    "auth_pass=secret")`` to answer an INVITE's digest challenge.
    """
    port, ctrl_port, console_port = free_port(), free_port(), free_port()
    with _workdir("caller-peer-", workdir) as directory:
        (directory / "audio").mkdir()
        config = _baresip_config(
            port,
            # ausine in baresip 1.0 only runs at 48 kHz stereo; baresip resamples.
            "audio_source ausine,440",
            "ausrc_srate 48000",
            "ausrc_channels 2",
            "audio_player aubridge,nil",
            "audio_alert aubridge,nil",
            "module ausine.so",
            "module sndfile.so",
            f"snd_path {directory / 'audio'}",
            "module cons.so",
            f"cons_listen {HOST}:{console_port}",
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen {HOST}:{ctrl_port}",
        )
        account = _account(user, port, codecs, account_params)
        home = _baresip_home(directory, config, [account])
        with _started("caller", ["baresip", "-f", str(home)], directory, lifetime) as p:
            _wait(
                lambda: _options_status(port, user) == 200, "answer", p, READY_TIMEOUT
            )
            _wait(lambda: _tcp_open(ctrl_port), "ctrl_tcp", p, READY_TIMEOUT)
            peer = CallerPeer(p, user, port, ctrl_port, console_port)
            try:
                yield peer
            finally:
                peer.close()


# ------------------------------------------------------------------ SIPp


class Sipp:
    """A SIPp UAS running one scenario; its trace files can be read while it runs."""

    def __init__(
        self, process: Process, scenario: str, port: int, media_port: int
    ) -> None:
        self.process = process
        self.scenario = scenario
        self.port = port
        self.media_port = media_port
        self._kept: dict[str, str] = {}

    @property
    def host_port(self) -> str:
        return f"{HOST}:{self.port}"

    def uri(self, user: str = "sipp") -> str:
        return f"sip:{user}@{self.host_port}"

    def messages(self) -> str:
        """Every SIP message SIPp sent and received (``-trace_msg``)."""
        return self._read(TRACE_FILES[0])

    def log(self) -> str:
        """The scenario's ``<log>`` lines (``-trace_logs``), e.g. ``AUTH … valid=true``."""
        return self._read(TRACE_FILES[1])

    def errors(self) -> str:
        """SIPp's error trace (``-trace_err``): unexpected messages, timeouts."""
        return self._read(TRACE_FILES[2])

    def output(self) -> str:
        return self.process.output()

    def wait_log(self, text: str, timeout: float = 5.0) -> str:
        """Wait until ``text`` is in the scenario's log; return the whole log."""

        def found() -> str | None:
            log = self.log()
            return log if text in log else None

        return str(_wait(found, f"log line {text!r}", self.process, timeout))

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait until SIPp has handled its ``calls``; 0 when every call passed."""
        return self.process.wait(timeout)

    def keep_files(self) -> None:
        """Read the trace files into memory, before their directory goes."""
        self._kept = {name: self._read(name) for name in TRACE_FILES}

    def _read(self, name: str) -> str:
        if name in self._kept:
            return self._kept[name]
        path = self.process.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def sipp(
    scenario: str,
    *,
    keys: Mapping[str, str | int] | None = None,
    media: bool = False,
    hangup_after: float = 30.0,
    dtmf: str | None = None,
    calls: int = 1,
    lifetime: float = LIFETIME,
    workdir: Path | None = None,
) -> Iterator[Sipp]:
    """Run ``sipp/<scenario>`` as a UAS on a free port; each file says what it does.

    ``keys`` fill the scenario's ``[name]`` fields (``-key name value``). An answer's
    SDP names SIPp's own media port: with ``media=True`` SIPp echoes the RTP it gets
    there, otherwise it sends none. An answered call ends with SIPp's BYE after
    ``hangup_after`` seconds unless the caller's BYE comes first. ``dtmf`` is the keys
    ``invite_dtmf.xml`` presses. SIPp exits after ``calls`` calls.
    """
    source = SCENARIOS / scenario
    if not source.is_file():
        raise PeerError(f"no SIPp scenario {scenario!r} in {SCENARIOS}")
    text = source.read_text()
    if DTMF_PCAP in text and dtmf is None:
        raise PeerError(f"{scenario} presses keys: pass them, e.g. dtmf='159#'")
    port, control_port = free_port(), free_port()
    # SIPp binds the media port and the one two above it (video).
    media_port = free_port(also=(2,))
    with _workdir("sipp-", workdir) as directory:
        # SIPp looks for a scenario's pcap files next to it.
        (directory / scenario).write_text(text)
        if dtmf is not None:
            write_dtmf_pcap(directory / DTMF_PCAP, dtmf)
        args = ["sipp", "-sf", scenario, "-i", HOST, "-p", str(port), "-nostdin"]
        args += ["-cp", str(control_port), "-mi", HOST, "-mp", str(media_port)]
        args += ["-m", str(calls)]
        # An answered call's wait for the caller's BYE has no timeout of its own: this
        # is it. The scenarios' other waits without one end within a second.
        args += ["-recv_timeout", str(round(hangup_after * 1000))]
        args += ["-trace_msg", "-message_file", TRACE_FILES[0]]
        args += ["-trace_logs", "-log_file", TRACE_FILES[1]]
        args += ["-trace_err", "-error_file", TRACE_FILES[2]]
        if media:
            args.append("-rtp_echo")
        for name, value in (keys or {}).items():
            args += ["-key", name, str(value)]
        with _started("sipp", args, directory, lifetime) as process:
            _wait(lambda: _udp_bound(port), "SIP port", process, READY_TIMEOUT)
            peer = Sipp(process, scenario, port, media_port)
            try:
                yield peer
            finally:
                process.stop()
                peer.keep_files()


def write_dtmf_pcap(
    path: Path, digits: str, *, press_ms: int = 100, gap_ms: int = 200
) -> None:
    """Write the RTP a trunk sends when its caller presses ``digits``, as a pcap.

    PCMU silence (payload type 0) every 20 ms; each key an RFC 4733 event (payload
    type 101, as the scenarios' SDP says) of ``press_ms`` closed by three end packets;
    ``gap_ms`` of silence before, between and after the keys: a receiver's jitter
    buffer releases the last end packet only when more audio follows it.
    """
    unknown = set(digits) - set(DTMF_EVENTS)
    if unknown:
        raise ValueError(f"not DTMF keys: {sorted(unknown)}")
    ssrc = random.getrandbits(32)
    packets: list[tuple[int, bytes]] = []  # (20 ms slot, RTP packet)

    def add(slot: int, kind: int, timestamp: int, payload: bytes, mark: bool) -> None:
        header = struct.pack(
            "!BBHII", 0x80, kind | (0x80 if mark else 0), len(packets), timestamp, ssrc
        )
        packets.append((slot, header + payload))

    slot = 0
    for digit in ["", *digits]:
        if digit:
            event, start, frames = (
                DTMF_EVENTS[digit],
                slot * 160,
                max(press_ms // 20, 1),
            )
            for n in range(1, frames + 1):
                add(slot, 101, start, struct.pack("!BBH", event, 10, n * 160), n == 1)
                slot += 1
            end = struct.pack("!BBH", event, 0x80 | 10, frames * 160)
            for _ in range(3):
                add(slot, 101, start, end, False)
                slot += 1
        for _ in range(gap_ms // 20):
            add(slot, 0, slot * 160, b"\xff" * 160, False)
            slot += 1

    with path.open("wb") as pcap:
        pcap.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for slot, packet in packets:
            frame = _ethernet_frame(packet)
            seconds, micros = divmod(slot * 20_000, 1_000_000)
            pcap.write(struct.pack("<IIII", seconds, micros, len(frame), len(frame)))
            pcap.write(frame)


def _ethernet_frame(rtp: bytes) -> bytes:
    # SIPp sends the UDP payload to the call's media address: the rest only has to parse.
    udp = struct.pack("!HHHH", 40000, 40002, 8 + len(rtp), 0) + rtp
    address = socket.inet_aton(HOST)
    ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0) + 2 * address
    total = sum(struct.unpack("!10H", ip))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    ip = ip[:10] + struct.pack("!H", ~total & 0xFFFF) + ip[12:]
    return bytes(12) + b"\x08\x00" + ip + udp
