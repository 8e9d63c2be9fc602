from __future__ import annotations

import functools
import re
from typing import Any

from django.conf import settings
from django.utils.functional import Promise
from rest_framework.renderers import JSONRenderer

_UNDERSCORE = re.compile(r"[a-z0-9]?_[a-z0-9]")
_PLAIN = (str, int, float, bool, type(None))


def _upper(match: re.Match[str]) -> str:
    group = match.group()
    return group[0] + group[2].upper() if len(group) == 3 else group[1].upper()


@functools.lru_cache(maxsize=2048)
def camel_key(key: str) -> str:
    return _UNDERSCORE.sub(_upper, key)


def camelize(data: Any, verbatim: frozenset[str]) -> Any:
    """snake_case keys to camelCase, deeply; the values of ``verbatim`` keys untouched.

    What ``djangorestframework_camel_case`` does, for the project's options, without its
    cost: most of a response is already camelCase or plain values.
    """
    if isinstance(data, _PLAIN):
        return data
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if isinstance(key, Promise):
                key = str(key)
            new = camel_key(key) if isinstance(key, str) and "_" in key else key
            if key in verbatim or new in verbatim or isinstance(value, _PLAIN):
                out[new] = value
            else:
                out[new] = camelize(value, verbatim)
        return out
    if isinstance(data, list | tuple):
        return [camelize(item, verbatim) for item in data]
    if isinstance(data, Promise):
        return str(data)
    return data


@functools.cache
def _verbatim() -> frozenset[str]:
    options = settings.JSON_CAMEL_CASE.get("JSON_UNDERSCOREIZE", {})
    return frozenset(options.get("ignore_fields") or ())


class EnvelopeRenderer(JSONRenderer):
    """camelCase JSON; problem details keep their own content type."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data: Any, *args: Any, **kwargs: Any) -> bytes:
        return super().render(camelize(data, _verbatim()), *args, **kwargs)
