"""One JSON error shape for every API failure: ``{"error": {"code", "message", "details"}}``.

Reusable by every app that mounts endpoints under /api/ (connectors, customers): it is the project-wide
DRF ``EXCEPTION_HANDLER``, and ``handler400/403/404/500`` below answer JSON for /api/ paths at the
Django level (no route matched, body too big, a crash) while the rest of the site keeps Django's pages.
Raise ``ApiError`` (or a subclass of ``sync.services.SyncServiceError``) from a view to pick the status,
code and message yourself.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.errors import AuthError, RateLimited, UpstreamError, error_body
from sync.services import SyncServiceError

log = logging.getLogger(__name__)

# DRF's default codes, renamed where the default is vague, so clients can switch on them.
_CODE_FOR_STATUS = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "throttled",
    500: "server_error",
    502: "upstream_error",
}


class ApiError(drf_exceptions.APIException):
    """An error with a chosen status, code, message and optional details."""

    status_code = 400
    default_code = "invalid"
    default_detail = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=message or self.default_detail, code=code or self.default_code)
        if status_code is not None:
            self.status_code = status_code
        self.error_code = code or self.default_code
        self.details = details
        self.headers = headers or {}


class PayloadTooLarge(ApiError):
    status_code = 413
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


def _flatten_message(detail: Any) -> str:
    """A readable one-line summary of a DRF validation detail (the full detail goes in ``details``)."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _flatten_message(value)
            parts.append(text if field in ("non_field_errors", "detail") else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten_message(v) for v in detail)
    return str(detail)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF EXCEPTION_HANDLER. Anything unknown is left to Django (-> handler500, JSON for /api/)."""
    headers: dict[str, str] = {}
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()

    if isinstance(exc, SyncServiceError):
        code, message, details, status_code = exc.code, str(exc), {}, exc.http_status
        if code == "unknown_resource":
            # The resource is a path segment: a name the connection's kind lacks is "no such thing here"
            # (404), not a malformed request (issue 17, schema fuzzing).
            status_code = status.HTTP_404_NOT_FOUND
    elif isinstance(exc, UpstreamError):
        status_code = status.HTTP_502_BAD_GATEWAY
        code = {AuthError: "upstream_auth_failed", RateLimited: "upstream_rate_limited"}.get(
            type(exc), "upstream_error"
        )
        details = {"verdict": exc.verdict.value, "upstream_status": exc.status}
        if exc.wait is not None:
            details["retry_after_seconds"] = exc.wait
        message = str(exc)
    elif isinstance(exc, drf_exceptions.APIException):
        status_code = exc.status_code
        if isinstance(exc, ApiError):
            code, message, details = exc.error_code, str(exc.detail), exc.details
            headers.update(exc.headers)
        elif isinstance(exc, drf_exceptions.ValidationError):
            code, message, details = "invalid", _flatten_message(exc.detail) or "Invalid input.", {"fields": exc.detail}
            if isinstance(exc.detail, list):
                details = {"non_field_errors": exc.detail}
        elif isinstance(exc, drf_exceptions.Throttled):
            code, details = "throttled", {"retry_after_seconds": exc.wait}
            message = "Too many requests" + (f"; try again in {int(exc.wait + 0.999)} s." if exc.wait else ".")
        else:
            default = exc.get_codes() if isinstance(exc.get_codes(), str) else None
            code = _CODE_FOR_STATUS.get(status_code) if default in (None, "error") else default
            message, details = _flatten_message(exc.detail), {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait + 0.999))
    else:
        return None
    set_rollback()
    return Response(
        error_body(code or _CODE_FOR_STATUS.get(status_code, "error"), message, details),
        status=status_code,
        headers=headers,
    )


# --- Django-level handlers (set in config/urls.py): JSON for /api/, Django's own pages elsewhere ------------
def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def handler400(request, exception=None):
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body("payload_too_large", "The request body is too large."), status=413)
    message = (
        "Bad request." if not isinstance(exception, SuspiciousOperation) else "The request was refused as malformed."
    )
    return JsonResponse(error_body("bad_request", message), status=400)


def handler403(request, exception=None):
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse(
        error_body("permission_denied", "You do not have permission to perform this action."), status=403
    )


def handler404(request, exception=None):
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse(
        error_body("not_found", f"No API endpoint or object at {request.path}. See /api/docs/ for the endpoints."),
        status=404,
    )


def handler500(request):
    if not _is_api(request):
        return defaults.server_error(request)
    return JsonResponse(error_body("server_error", "Something went wrong on our side; it has been logged."), status=500)
