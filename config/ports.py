"""A loopback port for a SIP listener chosen before it binds (tests and benchmarks)."""

from __future__ import annotations

import random
import socket


def free_sip_port() -> int:
    """A port free for UDP and TCP, with the one above free for TCP (SIP over TLS).

    Chosen now, bound when the SIP carrier starts: so from 13000-19999, below Linux's
    ephemeral range (32768 and up), where no outgoing connection of the process
    (PostgreSQL, Redis, HTTP) can take it meanwhile. The SIP test peers take theirs from
    20000-29999. Reads no settings, so it may run before they load.
    """
    for port in random.sample(range(13000, 19999), 300):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", port))
            for candidate in (port, port + 1):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                    tcp.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for the SIP listener")
