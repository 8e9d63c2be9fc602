"""The live media socket (DESIGN §5).

- ``consumer``: the ASGI consumer that authorises, accepts and pumps frames.
- ``link``: a socket's attachment to a call runtime, free of socket code.
- ``bridge``: the exceptional cross-process path over the channel layer.
"""
