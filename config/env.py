"""Typed reader for settings that come from the environment.

Every setting read here fails loudly: a value that does not parse stops start-up with a
message naming the variable, instead of silently falling back to a default.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ImproperlyConfiguredEnv(Exception):
    """An environment variable is missing or holds a value that does not parse."""


class Env:
    """Read typed values from a mapping (``os.environ`` by default)."""

    def __init__(self, source: Mapping[str, builtins.str] | None = None) -> None:
        self._source = os.environ if source is None else source

    def _raw(self, name: builtins.str) -> builtins.str | None:
        value = self._source.get(name)
        return None if value is None else value.strip()

    def _parse(
        self,
        name: builtins.str,
        kind: builtins.str,
        parse: Callable[[builtins.str], T],
        raw: builtins.str,
    ) -> T:
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfiguredEnv(
                f"Environment variable {name}={raw!r} is not a valid {kind}: {exc}"
            ) from None

    def str(
        self,
        name: builtins.str,
        default: builtins.str | None = None,
        *,
        required: builtins.bool = False,
    ) -> builtins.str:
        raw = self._raw(name)
        if raw is None or raw == "":
            if required or default is None:
                raise ImproperlyConfiguredEnv(
                    f"Environment variable {name} is required."
                )
            return default
        return raw

    def optional_str(self, name: builtins.str) -> builtins.str | None:
        raw = self._raw(name)
        return raw or None

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        raw = self._raw(name)
        if raw is None:
            return default

        def parse(value: builtins.str) -> builtins.bool:
            lowered = value.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError("expected one of 1/0, true/false, yes/no, on/off")

        return self._parse(name, "boolean", parse, raw)

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        *,
        min_value: builtins.int | None = None,
        max_value: builtins.int | None = None,
    ) -> builtins.int:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default

        def parse(value: builtins.str) -> builtins.int:
            number = int(value)
            if min_value is not None and number < min_value:
                raise ValueError(f"must be at least {min_value}")
            if max_value is not None and number > max_value:
                raise ValueError(f"must be at most {max_value}")
            return number

        return self._parse(name, "integer", parse, raw)

    def float(
        self,
        name: builtins.str,
        default: builtins.float,
        *,
        min_value: builtins.float | None = None,
    ) -> builtins.float:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default

        def parse(value: builtins.str) -> builtins.float:
            number = float(value)
            if min_value is not None and number < min_value:
                raise ValueError(f"must be at least {min_value}")
            return number

        return self._parse(name, "number", parse, raw)

    def list(
        self, name: builtins.str, default: builtins.list[builtins.str]
    ) -> builtins.list[builtins.str]:
        raw = self._raw(name)
        if raw is None:
            return default
        return [item.strip() for item in raw.split(",") if item.strip()]

    def port_range(
        self, name: builtins.str, default: tuple[builtins.int, builtins.int]
    ) -> tuple[builtins.int, builtins.int]:
        """``FIRST-LAST``, two ports with FIRST < LAST (RTP wants an even, wide range)."""
        raw = self._raw(name)
        if raw is None or raw == "":
            return default

        def parse(value: builtins.str) -> tuple[builtins.int, builtins.int]:
            first, sep, last = value.partition("-")
            if not sep:
                raise ValueError("expected FIRST-LAST, e.g. 20000-29999")
            low, high = int(first), int(last)
            if not (0 < low < high < 65536):
                raise ValueError("ports must satisfy 0 < FIRST < LAST < 65536")
            return low, high

        return self._parse(name, "port range", parse, raw)

    def choice(
        self,
        name: builtins.str,
        default: builtins.str,
        choices: tuple[builtins.str, ...],
    ) -> builtins.str:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default

        def parse(value: builtins.str) -> builtins.str:
            if value not in choices:
                raise ValueError(f"expected one of {', '.join(choices)}")
            return value

        return self._parse(name, "choice", parse, raw)

    def url(
        self,
        name: builtins.str,
        *,
        schemes: tuple[builtins.str, ...],
        required: builtins.bool = False,
    ) -> builtins.str | None:
        raw = self._raw(name)
        if raw is None or raw == "":
            if required:
                raise ImproperlyConfiguredEnv(
                    f"Environment variable {name} is required."
                )
            return None

        def parse(value: builtins.str) -> builtins.str:
            parts = urlsplit(value)
            if parts.scheme not in schemes:
                raise ValueError(f"scheme must be one of {', '.join(schemes)}")
            if not parts.hostname and parts.scheme not in ("sqlite",):
                raise ValueError("a host is required")
            return value

        return self._parse(name, "URL", parse, raw)


env = Env()
