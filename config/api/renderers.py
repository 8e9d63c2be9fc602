from __future__ import annotations

from djangorestframework_camel_case.render import CamelCaseJSONRenderer


class EnvelopeRenderer(CamelCaseJSONRenderer):
    """camelCase JSON; problem details keep their own content type."""

    media_type = "application/json"
    format = "json"
    charset = None
