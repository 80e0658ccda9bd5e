"""JSON log lines (LOG_FORMAT=json): python-json-logger, with every field redacted.

core.redaction.RedactingFilter cleans the message and traceback before any formatter runs; fields passed
with ``extra=`` bypass it, so this formatter redacts the whole record it is about to write (known secret
values, secret-shaped query strings and URLs, and any field whose name says secret/token/password)."""

from __future__ import annotations

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from core.redaction import redact_data

# Field names: `timestamp` (ISO 8601, UTC), `level`, `logger`, `message`, then the record's `extra` fields
# as given (the MDM export's success / duration_ms / item_count / s3_location / etag / error_type ...).
FIELDS = "%(levelname)s %(name)s %(message)s"
RENAMES = {"levelname": "level", "name": "logger", "exc_info": "exception"}


class JsonFormatter(_JsonFormatter):
    def __init__(self, fmt: str = FIELDS, *args, **kwargs):
        kwargs.setdefault("rename_fields", RENAMES)
        kwargs.setdefault("timestamp", True)
        super().__init__(fmt, *args, **kwargs)

    def process_log_record(self, log_data):
        return redact_data(super().process_log_record(log_data))
