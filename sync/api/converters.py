"""Path converters for /api/ routes. Importing this module registers them (sync.api.urls does).

``<sync_id:pk>``: a positive id of at most 18 digits. Django's ``<int:...>`` matches any length, and an
id too big for a 64-bit column makes the database raise (a 500); with this converter it is a JSON 404.
``<sync_resource:resource>``: a resource name (letters, digits, ``_ . -``; 1-64 characters)."""

from __future__ import annotations

import re

from django.urls import register_converter


class IdConverter:
    regex = "[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))


class ResourceConverter:
    regex = "[A-Za-z0-9_.-]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return str(value)


def parse_id(value) -> int | None:
    """An id from a query string the way the converter reads one from a path: None unless it is 1-18 ASCII
    digits (``str.isdigit()`` also accepts "²" and other Unicode digits, which int() then rejects)."""
    if isinstance(value, str) and re.fullmatch(IdConverter.regex, value):
        return int(value)
    return None


register_converter(IdConverter, "sync_id")
register_converter(ResourceConverter, "sync_resource")
