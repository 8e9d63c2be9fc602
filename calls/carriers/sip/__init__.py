"""The SIP trunk carrier (DESIGN §11.1): any SIP provider or PBX, on baresip-python.

- ``settings``: the session's ``sip`` settings object and addresses.
- ``stack``: the process's SIP stack (one per process), a user agent per line.
- ``leg``: a call's signalling and audio.
"""

from calls.carriers.sip.carrier import SipCarrier

__all__ = ["SipCarrier"]
