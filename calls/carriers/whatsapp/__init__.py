"""WhatsApp Business Calling (DESIGN §11.2): Meta's Cloud API Calling, media over WebRTC.

- ``settings``: the session's ``whatsapp`` settings object and addresses.
- ``graph``: the Graph API requests (number read, call actions).
- ``webhook``: the per-session webhook Meta calls (verification, signed events).
- ``rtc``: aiortc peers on their own loops, and the frames they trade with the tick.
- ``leg``: a call's signalling and media.
"""

from calls.carriers.whatsapp.carrier import WhatsAppCarrier

__all__ = ["WhatsAppCarrier"]
