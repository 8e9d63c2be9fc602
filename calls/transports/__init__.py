"""Client transports: how a customer's software takes and gives a call's audio.

A transport attaches to a call's runtime (``CallRuntime.attach_client``) under its kind,
in the runtime's roles: an outbound source (audio for the peer), a media subscriber (each
tick's frames) and a call observer (state changes, the end). The snapshot's ``transport``
names the kind attached now. Transports here:

- ``websocket``: the live media socket (DESIGN §5): the consumer, the link between a
  socket and a runtime, and the bridge for a socket that lands in another process.

Dial-out streams (the ``streams`` app) attach the same way, as kind ``stream``.
"""
