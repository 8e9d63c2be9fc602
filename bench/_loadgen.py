"""Load generator for ``bench/media_socket.py``: real-time media-socket clients and the
bare ``websockets`` echo server used as the reference.

The client is a minimal RFC 6455 client on a plain ``asyncio.Protocol`` (no extensions,
so no permessage-deflate). It masks with the all-zero key, which the RFC allows, so a
frame costs one ``transport.write`` and no per-byte work: the generator has to drive as
many sockets as the server it measures, on one core of its own, and the ``websockets``
library client costs about twice as much per frame. ``--client websockets`` swaps it in as
a cross-check at small N (the round trips agree).

Every sent frame (Float32LE, 320 samples) carries its sequence number in sample 0
(``(seq + 1) / 65536``, exact in float32) and a marker constant in sample 1; an echoed
frame is recognised by the marker and timed on arrival.

Run the reference server alone: ``python bench/_loadgen.py serve-bare --port 8765``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import runpy
import signal
import struct
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FRAME_MS = 20
FRAME_S = FRAME_MS / 1000
FRAME_SAMPLES = 320
FRAME_BYTES = FRAME_SAMPLES * 4
PHASE_SLOTS = 20  # clients' send phases are spread over 20 slots of 1 ms

_ID = struct.Struct("<ff")
MARKER = struct.unpack("<f", struct.pack("<f", 0.6180339887))[0]
MARKER_BYTES = struct.pack("<f", MARKER)
ZERO_FRAME = bytes(FRAME_BYTES)
_REST = bytes(FRAME_BYTES - _ID.size)
# FIN + binary, MASK + 126 (16-bit length), length 1280, all-zero masking key.
_BINARY_HEADER = bytes([0x82, 0x80 | 126]) + FRAME_BYTES.to_bytes(2, "big") + bytes(4)


def frame_payload(seq: int) -> bytes:
    return _ID.pack((seq + 1) / 65536.0, MARKER) + _REST


def _control_frame(opcode: int, payload: bytes) -> bytes:
    # Control payloads are at most 125 bytes; zero masking key.
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + bytes(4) + payload


@dataclass
class ClientStats:
    """What one client saw besides the echoed frames themselves."""

    binary_other: int = 0  # binary frames without an id (silence or anything else)
    silence: int = 0
    unaligned: int = 0  # id found but not at sample 0
    wrong_size: int = 0
    duplicates: int = 0
    texts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    close_code: int | None = None
    lost_connection: bool = False
    buffered_ms_max: int = 0  # deepest inbound playout buffer a `buffer` frame reported


class _ClientBase:
    """Timestamps and frame accounting shared by both client implementations."""

    def __init__(self, n_frames: int, expect_ready: bool) -> None:
        self.send_t = np.zeros(n_frames)
        self.recv_t = np.zeros(n_frames)
        self.n_frames = n_frames
        self.expect_ready = expect_ready
        self.stats = ClientStats()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not expect_ready:
            self.ready.set_result(None)

    def _on_binary(self, payload: bytes | bytearray | memoryview, now: float) -> None:
        if len(payload) != FRAME_BYTES:
            self.stats.wrong_size += 1
        if payload[4:8] == MARKER_BYTES:
            seq = int(_ID.unpack_from(payload, 0)[0] * 65536.0) - 1
        else:
            if payload == ZERO_FRAME:
                self.stats.silence += 1
                return
            # An id not at sample 0: the stream is shifted against our frames.
            raw = bytes(payload)
            at = raw.find(MARKER_BYTES, 4)
            while at != -1 and at % 4:
                at = raw.find(MARKER_BYTES, at + 1)
            if at == -1:
                self.stats.binary_other += 1
                return
            self.stats.unaligned += 1
            seq = int(struct.unpack_from("<f", raw, at - 4)[0] * 65536.0) - 1
        if 0 <= seq < self.n_frames:
            if self.recv_t[seq]:
                self.stats.duplicates += 1
            else:
                self.recv_t[seq] = now
        else:
            self.stats.binary_other += 1

    def _on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
            kind = str(message.get("type"))
        except (ValueError, AttributeError):
            kind = "<not json>"
            message = {}
        self.stats.texts[kind] += 1
        if kind == "error":
            self.stats.errors[str(message.get("code"))] += 1
        elif kind == "buffer":
            depth = message.get("bufferedMs")
            if isinstance(depth, int) and depth > self.stats.buffered_ms_max:
                self.stats.buffered_ms_max = depth
        if kind == "ready" and not self.ready.done():
            self.ready.set_result(None)


class RawClient(_ClientBase, asyncio.Protocol):
    """One media socket on a bare protocol: handshake, frame parser, zero-key sends."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        headers: dict[str, str],
        n_frames: int,
        expect_ready: bool,
    ) -> None:
        super().__init__(n_frames, expect_ready)
        self.host, self.port, self.path, self.headers = host, port, path, headers
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = (
            asyncio.get_running_loop().create_future()
        )
        self.buf = bytearray()
        self.upgraded = False
        self.fragments: bytearray | None = None
        self.fragment_opcode = 0
        self.max_write_buffer = 0

    # -- protocol callbacks ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.handshake.done():
            self.handshake.set_exception(
                ConnectionError(f"closed before upgrade: {exc}")
            )
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before ready"))
        self.stats.lost_connection = self.stats.close_code is None

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end == -1:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            status = head.split("\r\n", 1)[0]
            if " 101 " not in status + " ":
                body = bytes(buf[:200]).decode("latin-1", "replace")
                self.handshake.set_exception(ConnectionError(f"{status!r} {body!r}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            self.handshake.set_result(None)
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                header = 10
            if b1 & 0x80:  # servers must not mask; tolerate it anyway
                header += 4
            end = pos + header + length
            if end > size:
                break
            payload = bytes(buf[pos + header : end])
            if b1 & 0x80:
                mask = buf[pos + header - 4 : pos + header]
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            pos = end
            self._on_frame(b0 & 0x80, b0 & 0x0F, payload, now)
        if pos:
            del buf[:pos]

    # -- frames ---------------------------------------------------------------------
    def _on_frame(self, fin: int, opcode: int, payload: bytes, now: float) -> None:
        if opcode == 0:  # continuation
            if self.fragments is None:
                return
            self.fragments += payload
            if not fin:
                return
            opcode, payload = self.fragment_opcode, bytes(self.fragments)
            self.fragments = None
        elif not fin and opcode in (1, 2):
            self.fragments, self.fragment_opcode = bytearray(payload), opcode
            return
        if opcode == 2:
            self._on_binary(payload, now)
        elif opcode == 1:
            self._on_text(payload.decode("utf-8", "replace"))
        elif opcode == 9 and self.transport is not None:
            self.transport.write(_control_frame(0xA, payload))
        elif opcode == 8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if self.stats.close_code is None:
                self.stats.close_code = code
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(_control_frame(0x8, payload[:2]))
            if self.transport is not None:
                self.transport.close()

    # -- used by the pacer ----------------------------------------------------------
    def send(self, seq: int) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.send_t[seq] = time.perf_counter()
        transport.write(_BINARY_HEADER + _ID.pack((seq + 1) / 65536.0, MARKER) + _REST)
        size = transport.get_write_buffer_size()
        if size > self.max_write_buffer:
            self.max_write_buffer = size

    async def close(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if not transport.is_closing() and self.stats.close_code is None:
            self.stats.close_code = 1000  # ours; the server's reply is not recorded
            transport.write(_control_frame(0x8, (1000).to_bytes(2, "big")))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), 2.0)
        except TimeoutError:
            transport.abort()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, self.host, self.port)
        await self.handshake


class LibClient(_ClientBase):
    """The same client on ``websockets``' asyncio implementation (cross-check only)."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        headers: dict[str, str],
        n_frames: int,
        expect_ready: bool,
    ) -> None:
        super().__init__(n_frames, expect_ready)
        self.uri = f"ws://{host}:{port}{path}"
        self.headers = headers
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.max_write_buffer = 0

    async def start(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            self.uri,
            additional_headers=self.headers,
            compression=None,
            max_size=None,
            ping_interval=None,
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self.ws:
                now = time.perf_counter()
                if isinstance(message, bytes):
                    self._on_binary(message, now)
                else:
                    self._on_text(message)
        except ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.close_rcvd
            self.stats.close_code = rcvd.code if rcvd is not None else None
            self.stats.lost_connection = rcvd is None and self.ws.close_sent is None
            if not self.ready.done():
                self.ready.set_exception(ConnectionError("closed before ready"))
            if not self.closed.done():
                self.closed.set_result(None)

    def send(self, seq: int) -> Awaitable[None]:
        self.send_t[seq] = time.perf_counter()
        return self.ws.send(frame_payload(seq))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


Client = RawClient | LibClient


@dataclass
class StepResult:
    n: int
    connected: int
    sent: int = 0
    received: int = 0
    lost: int = 0
    late: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    server_cpu: float = float("nan")  # fraction of one core
    gen_cpu: float = float("nan")
    other_cpu: float = float("nan")  # everything else on both cores, incl. the kernel
    send_lag_p99_ms: float = float("nan")
    max_write_buffer: int = 0
    disconnects: int = 0
    unaligned: int = 0
    duplicates: int = 0
    buffered_ms_max: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    texts: Counter[str] = field(default_factory=Counter)
    setup_error: str = ""

    @property
    def passed(self) -> bool:
        return (
            not self.setup_error
            and self.connected == self.n
            and self.disconnects == 0
            and self.lost == 0
            and self.received > 0
            and self.p99_ms < 40.0
        )


def machine_busy_seconds() -> float:
    """Busy time of all cores (user, nice, system, irq, softirq, steal), in seconds."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    ticks = [int(f) for f in fields]
    busy = sum(ticks[:3]) + sum(ticks[5:8])  # skip idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def open_clients(
    host: str,
    port: int,
    paths: Sequence[str],
    headers: dict[str, str],
    n_frames: int,
    expect_ready: bool,
    kind: str = "raw",
    concurrency: int = 32,
) -> tuple[list[Client], list[str]]:
    """Connect every path and wait for its ``ready``; returns clients and errors."""
    gate = asyncio.Semaphore(concurrency)
    cls = RawClient if kind == "raw" else LibClient

    async def one(path: str) -> Client | str:
        async with gate:
            client = cls(host, port, path, headers, n_frames, expect_ready)
            try:
                await asyncio.wait_for(client.start(), 20)
                await asyncio.wait_for(client.ready, 20)
            except Exception as exc:
                await client.close()
                return f"{type(exc).__name__}: {exc}"
            return client

    outcomes = await asyncio.gather(*(one(path) for path in paths))
    clients = [c for c in outcomes if not isinstance(c, str)]
    errors = [c for c in outcomes if isinstance(c, str)]
    return clients, errors


async def stream(
    clients: Sequence[Client],
    warmup_s: float,
    seconds: float,
    echo_delay_s: float,
    server_pid: int,
    grace_s: float = 1.0,
    profile_window: bool = False,
) -> StepResult:
    """Stream 20 ms frames from every client in real time and measure the echoes.

    With ``profile_window`` the server (run by ``profiled``) gets SIGUSR1 when the
    measured window opens and SIGUSR2 when it closes."""
    n_warm = round(warmup_s / FRAME_S)
    n_frames = n_warm + round(seconds / FRAME_S)
    groups: list[list[Client]] = [[] for _ in range(PHASE_SLOTS)]
    for index, client in enumerate(clients):
        groups[index * PHASE_SLOTS // max(len(clients), 1)].append(client)
    slots = [(slot, group) for slot, group in enumerate(groups) if group]
    lags: list[float] = []
    texts_before: list[Counter[str]] = []
    cpu_marks: dict[str, float] = {}

    start = time.perf_counter() + 0.05
    for seq in range(n_frames):
        if seq == n_warm:
            if profile_window:
                os.kill(server_pid, signal.SIGUSR1)
            cpu_marks["server0"] = proc_cpu_seconds(server_pid)
            texts_before = [Counter(c.stats.texts) for c in clients]
            cpu_marks["gen0"] = time.process_time()
            cpu_marks["all0"] = machine_busy_seconds()
            cpu_marks["wall0"] = time.perf_counter()
        base = start + seq * FRAME_S
        for slot, group in slots:
            deadline = base + slot * 0.001
            delay = deadline - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if seq >= n_warm:
                lags.append(time.perf_counter() - deadline)
            for client in group:
                pending = client.send(seq)
                if pending is not None:
                    await pending
    # Measure CPU over the streaming window, then wait for the last echoes.
    wall = time.perf_counter() - cpu_marks["wall0"]
    server_cpu = (proc_cpu_seconds(server_pid) - cpu_marks["server0"]) / wall
    if profile_window:
        os.kill(server_pid, signal.SIGUSR2)
    gen_cpu = (time.process_time() - cpu_marks["gen0"]) / wall
    texts_window: Counter[str] = Counter()
    for client, before in zip(clients, texts_before, strict=True):
        texts_window += client.stats.texts - before
    all_cpu = (machine_busy_seconds() - cpu_marks["all0"]) / wall
    await asyncio.sleep(echo_delay_s + grace_s)

    result = StepResult(n=len(clients), connected=len(clients))
    rtts = []
    for client in clients:
        sent = client.send_t[n_warm:]
        recv = client.recv_t[n_warm:]
        was_sent = sent > 0
        got = was_sent & (recv > 0)
        result.sent += int(was_sent.sum())
        result.received += int(got.sum())
        result.lost += int((was_sent & ~got).sum())
        rtts.append(recv[got] - sent[got] - echo_delay_s)
        st = client.stats
        result.unaligned += st.unaligned
        result.duplicates += st.duplicates
        result.buffered_ms_max = max(result.buffered_ms_max, st.buffered_ms_max)
        result.errors += st.errors
        result.max_write_buffer = max(result.max_write_buffer, client.max_write_buffer)
        if st.lost_connection or (st.close_code is not None and st.close_code != 1000):
            result.disconnects += 1
    all_rtts = np.concatenate(rtts) if rtts else np.zeros(0)
    if all_rtts.size:
        result.p50_ms = float(np.percentile(all_rtts, 50) * 1000)
        result.p99_ms = float(np.percentile(all_rtts, 99) * 1000)
        result.max_ms = float(all_rtts.max() * 1000)
        result.late = int((all_rtts > 0.040).sum())
    result.server_cpu = server_cpu
    result.gen_cpu = gen_cpu
    result.texts = texts_window  # text frames received in the measured window
    result.other_cpu = max(0.0, all_cpu - server_cpu - gen_cpu)
    if lags:
        result.send_lag_p99_ms = float(np.percentile(lags, 99) * 1000)
    return result


async def close_clients(clients: Sequence[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


# -- the reference server -------------------------------------------------------------
async def serve_bare(host: str, port: int) -> None:
    """A bare ``websockets`` asyncio echo server: every binary message straight back."""
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            if isinstance(message, bytes):
                await ws.send(message)

    async with serve(echo, host, port, compression=None, max_size=2**20) as server:
        await server.serve_forever()


def run_profiled(out: str, argv: list[str]) -> None:
    """Run the Python script ``argv[0]`` (a server) in this process, profiling its main
    thread between SIGUSR1 and SIGUSR2; each window is dumped to ``{out}.{k}.prof``."""
    import cProfile

    state: dict[str, Any] = {"profiler": None, "windows": 0}

    def start(signum: int, frame: Any) -> None:
        if state["profiler"] is None:
            profiler = cProfile.Profile()
            state["profiler"] = profiler
            profiler.enable()

    def stop(signum: int, frame: Any) -> None:
        profiler = state["profiler"]
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{out}.{state['windows']}.prof")
            state["windows"] += 1
            state["profiler"] = None

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    bare = sub.add_parser("serve-bare", help="run the bare websockets echo server")
    bare.add_argument("--host", default="127.0.0.1")
    bare.add_argument("--port", type=int, default=8765)
    bare.add_argument(
        "--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop"
    )
    profiled = sub.add_parser(
        "profiled",
        help="run a Python server script, profiling SIGUSR1..SIGUSR2 windows",
    )
    profiled.add_argument("--out", required=True, help="path prefix of the profiles")
    profiled.add_argument("script", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "serve-bare" and args.uvloop:
        import uvloop

        uvloop.run(serve_bare(args.host, args.port))
    elif args.command == "serve-bare":
        asyncio.run(serve_bare(args.host, args.port))
    elif args.command == "profiled":
        run_profiled(args.out, args.script)


if __name__ == "__main__":
    main()
