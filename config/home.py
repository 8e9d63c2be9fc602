"""The process's home event loop: where the media engine and the channel layer live.

In a server process it is the ASGI server's loop (registered by the first ASGI call, see
``config.asgi``). Anywhere else (management commands, the Django test client, Celery), a
daemon thread runs a loop of its own, started on first use. Synchronous code reaches the
home loop through ``run_sync``; nothing else in the process touches the channel layer, so
the layer is only ever used from one loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_started_callbacks: list[Callable[[asyncio.AbstractEventLoop], None]] = []


def adopt(loop: asyncio.AbstractEventLoop) -> bool:
    """Make a server's running loop the home loop, unless one is already set."""
    global _loop
    with _lock:
        if _loop is not None:
            return _loop is loop
        _loop = loop
        callbacks = list(_started_callbacks)
    for callback in callbacks:
        loop.call_soon(callback, loop)
    return True


def _run_thread_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


def get_loop() -> asyncio.AbstractEventLoop:
    """Return the home loop, starting a background one if no server adopted a loop."""
    global _loop, _thread
    with _lock:
        if _loop is not None:
            return _loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        _thread = threading.Thread(
            target=_run_thread_loop,
            args=(loop, ready),
            name="switchboard-home",
            daemon=True,
        )
        _thread.start()
        ready.wait()
        _loop = loop
        callbacks = list(_started_callbacks)
    for callback in callbacks:
        loop.call_soon_threadsafe(callback, loop)
    return loop


def on_start(callback: Callable[[asyncio.AbstractEventLoop], None]) -> None:
    """Run ``callback(loop)`` on the home loop once it exists (now, if it already does)."""
    with _lock:
        _started_callbacks.append(callback)
        loop = _loop
    if loop is not None:
        loop.call_soon_threadsafe(callback, loop)


def in_home_loop() -> bool:
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:
        return False


def _release_pooled_connections() -> None:
    """Give this thread's pooled database connections back to the pool (unless it is
    inside a transaction): a thread waiting for the engine holds none meanwhile."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if (
            connection.connection is not None
            and not connection.in_atomic_block
            and connection.settings_dict.get("OPTIONS", {}).get("pool")
        ):
            connection.close()


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
    """Run a coroutine on the home loop from synchronous code and wait for its result."""
    loop = get_loop()
    if in_home_loop():
        coro.close()
        raise RuntimeError("run_sync() called from the home loop itself; await instead")
    _release_pooled_connections()
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise


def submit(coro: Coroutine[Any, Any, Any]) -> None:
    """Schedule a coroutine on the home loop without waiting (fire and forget)."""
    loop = get_loop()
    if in_home_loop():
        loop.create_task(coro)
    else:
        asyncio.run_coroutine_threadsafe(coro, loop)


def call_soon(callback: Callable[..., Any], *args: Any) -> None:
    """Schedule a plain callback on the home loop from any thread."""
    loop = get_loop()
    if in_home_loop():
        loop.call_soon(callback, *args)
    else:
        loop.call_soon_threadsafe(callback, *args)


async def gather_quietly(*aws: Awaitable[Any]) -> None:
    await asyncio.gather(*aws, return_exceptions=True)
