"""The simulator carrier: a simulated WhatsApp network (DESIGN §4.4), the embedded default
and the engine of test environments.

- ``carrier``: lines (linking by QR or pairing code, JID addresses) and dialling.
- ``peers``: the simulated peers' signalling and audio (echo, talker, busy…).
- ``helpers``: what the test-helper endpoints make the simulated phone and peers do.
"""

from calls.carriers.simulator.carrier import JID_RE, SimulatorCarrier
from calls.carriers.simulator.peers import (
    ECHO_DELAY_FRAMES,
    INCOMING_BEHAVIOURS,
    TALKER_PERIOD,
    talker_signal,
)

__all__ = [
    "ECHO_DELAY_FRAMES",
    "INCOMING_BEHAVIOURS",
    "JID_RE",
    "TALKER_PERIOD",
    "SimulatorCarrier",
    "talker_signal",
]
