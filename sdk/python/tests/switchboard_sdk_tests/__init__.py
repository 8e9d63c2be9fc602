"""The SDK against a real Switchboard server (the root conftest's ``asgi_server``).

A package of its own name: the repository's ``tests`` package already has that one.
"""
