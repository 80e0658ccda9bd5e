"""Bounded JSON: one parser for every body we accept (API, webhooks), so size and nesting depth are capped
the same way everywhere (DESIGN.md §17). A deeply nested body must be a clear 400, never a RecursionError
surfacing as a 500, and a big one never reaches ``json.loads``.

    from core.bodies import BodyRejected, parse_json
    try:
        payload = parse_json(raw)          # caps from settings: DATA_UPLOAD_MAX_MEMORY_SIZE, JSON_MAX_DEPTH
    except BodyRejected as exc:
        ... exc.code ("payload_too_large" | "too_deep" | "parse_error"), exc.http_status (413 | 400), str(exc)
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

DEFAULT_MAX_DEPTH = 64


class BodyRejected(ValueError):
    code = "parse_error"
    http_status = 400


class BodyTooLarge(BodyRejected):
    code = "payload_too_large"
    http_status = 413


class BodyTooDeep(BodyRejected):
    code = "too_deep"
    http_status = 400


def max_body_bytes() -> int | None:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def max_depth() -> int:
    return int(getattr(settings, "JSON_MAX_DEPTH", DEFAULT_MAX_DEPTH))


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def check_depth(value: Any, limit: int) -> None:
    """Iterative (a recursive walk would itself overflow on the bodies it exists to refuse)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            raise BodyTooDeep(f"The JSON body is nested deeper than {limit} levels.")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def parse_json(
    raw: bytes | str, *, limit_bytes: int | None = -1, limit_depth: int | None = None, encoding: str = "utf-8"
) -> Any:
    """Parse ``raw`` as strict JSON (no NaN/Infinity) within the caps; raise a ``BodyRejected``."""
    limit_bytes = max_body_bytes() if limit_bytes == -1 else limit_bytes
    limit_depth = max_depth() if limit_depth is None else limit_depth
    if limit_bytes is not None and len(raw) > limit_bytes:
        raise BodyTooLarge(f"The request body is {len(raw)} bytes; the limit is {limit_bytes} bytes.")
    try:
        text = raw.decode(encoding) if isinstance(raw, bytes) else raw
        value = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, LookupError):
        raise BodyRejected("The request body is not valid UTF-8 text.") from None
    except RecursionError:
        raise BodyTooDeep(f"The JSON body is nested deeper than {limit_depth} levels.") from None
    except ValueError as exc:
        raise BodyRejected(f"The request body is not valid JSON: {exc}") from None
    check_depth(value, limit_depth)
    return value
