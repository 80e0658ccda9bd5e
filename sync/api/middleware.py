"""JSON, never an HTML page, from every machine-facing route (``/api/`` and the upstreams' webhook routes),
whatever DEBUG says: Django's debug pages (technical 404/500), ``require_POST``'s empty 405, CSRF's 403
page and crashes inside other middleware all come out in the one error shape (sync.api.exceptions).

Also the first cap on hostile input for those routes (DESIGN.md §17): a declared body over
``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a 413 and a query string over ``QUERY_STRING_MAX_BYTES`` a 400 before any
view or parser runs. Bodies are then parsed by ``core.bodies.parse_json`` (size and depth).
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.http import JsonResponse

from .exceptions import _CODE_FOR_STATUS, error_body

log = logging.getLogger("sync.api")

# /api/... and /connectors/<kind>/webhooks/...: the routes that machines call.
DEFAULT_JSON_PATHS = r"^/(api/|connectors/[^/]+/webhooks?/)"
# Where upstreams or browsers hand us input (API, webhooks, OAuth callbacks): size caps apply before any view.
BOUNDED_PREFIXES = ("/api/", "/connectors/")

_MESSAGES = {
    400: "Bad request.",
    401: "Authentication credentials were not provided or are not valid.",
    403: "You do not have permission to perform this action.",
    404: "No such endpoint or object.",
    405: "Method not allowed on this endpoint.",
    413: "The request body is too large.",
    500: "Something went wrong on our side; it has been logged.",
}


def _json_paths() -> re.Pattern:
    return re.compile(getattr(settings, "JSON_ERROR_PATHS", DEFAULT_JSON_PATHS))


def is_machine_route(path: str) -> bool:
    return bool(_json_paths().match(path))


def json_error(status: int, message: str | None = None, code: str | None = None) -> JsonResponse:
    return JsonResponse(
        error_body(code or _CODE_FOR_STATUS.get(status, "error"), message or _MESSAGES.get(status, "Request failed.")),
        status=status,
    )


class JsonErrorMiddleware:
    """Outermost middleware (first in MIDDLEWARE) so it also sees what inner middleware produced."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(BOUNDED_PREFIXES):
            refused = self._refuse_oversized(request)
            if refused is not None:
                return refused
        if not is_machine_route(request.path):
            return self.get_response(request)
        response = self.get_response(request)
        if response.status_code >= 400 and not _is_json(response):
            replacement = json_error(response.status_code)
            for header in ("Allow", "WWW-Authenticate", "Retry-After"):
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response

    def process_exception(self, request, exception):
        # Only reached for exceptions escaping a view; DRF views handle their own first.
        if not is_machine_route(request.path):
            return None
        log.error("unhandled %s on %s", exception.__class__.__name__, request.path, exc_info=exception)
        return json_error(500)

    @staticmethod
    def _refuse_oversized(request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except (TypeError, ValueError):
            return json_error(400, "Content-Length is not a number.")
        if limit is not None and declared > limit:
            return json_error(413, f"The request body is {declared} bytes; the limit is {limit} bytes.")
        query_limit = getattr(settings, "QUERY_STRING_MAX_BYTES", 8192)
        if len(request.META.get("QUERY_STRING", "")) > query_limit:
            return json_error(400, f"The query string is longer than {query_limit} bytes.", code="bad_request")
        return None


def _is_json(response) -> bool:
    content_type = response.get("Content-Type", "")
    return content_type.split(";", 1)[0].strip().lower() in ("application/json", "application/problem+json")
