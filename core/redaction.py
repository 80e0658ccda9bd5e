"""Keep secrets out of logs, activity rows and error messages.

Connections register their secret values here when credentials are decrypted, so any later string that
contains one (an exception message echoing a URL with ?consumer_secret=..., a logged header) is masked.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "[redacted]"
_lock = threading.Lock()
_secrets: set[str] = set()
# Query-string and header shapes that carry secrets even when we never saw the value.
_PATTERNS = [
    re.compile(
        r"(?i)((?:consumer_secret|consumer_key|client_secret|access_token|refresh_token|token|password|secret)=)[^&\s\"']+"
    ),
    re.compile(r"(?i)((?:authorization|authentication)\s*[:=]\s*(?:bearer|basic)?\s*)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)(\"(?:consumer_secret|client_secret|access_token|refresh_token|password|secret|token)\"\s*:\s*\")[^\"]+"
    ),
    # Credentials in a URL's userinfo (https://user:password@host/...): someone pasted them into a setting.
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s@\"']+@"),
]


def register_secret(value: str | None) -> None:
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: object) -> str:
    s = str(text)
    if not s:
        return s
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in s:
            s = s.replace(secret, MASK)
    for pattern in _PATTERNS:
        s = pattern.sub(lambda m: m.group(1) + MASK + ("@" if m.group(0).endswith("@") else ""), s)
    return s


def redact_data(value):
    """Redact every string inside a JSON-like structure; drop values of secret-named keys."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and re.search(r"(?i)secret|token|password|authorization|api_key", k):
                out[k] = MASK
            else:
                out[k] = redact_data(v)
        return out
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not kill logging
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are rendered later from exc_info; pre-render and redact them now.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
