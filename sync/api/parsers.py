"""The project-wide DRF parser (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``): JSON only, within the caps of
``core.bodies`` (size ``DATA_UPLOAD_MAX_MEMORY_SIZE`` → 413, nesting ``JSON_MAX_DEPTH`` → 400), answered in the
standard error shape. DRF reads the raw stream and so bypasses Django's own size limit; this one does not."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.bodies import BodyRejected, BodyTooLarge, parse_json


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        # Imported here: DRF imports this class while loading its settings, before .exceptions can load.
        from .exceptions import ApiError, PayloadTooLarge

        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except (TypeError, ValueError):
            declared = 0
        if limit is not None and declared > limit:
            raise PayloadTooLarge(f"The request body is {declared} bytes; the limit is {limit} bytes.")
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return parse_json(raw, limit_bytes=limit, encoding=encoding)
        except BodyTooLarge:
            raise PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes.") from None
        except BodyRejected as exc:
            if exc.code == "parse_error":
                raise ParseError(str(exc)) from None
            raise ApiError(str(exc), code=exc.code, status_code=exc.http_status) from None
