"""drf-spectacular building blocks for documenting errors and ids the same way on every /api/ view:

from sync.api.openapi import AUTH_ERRORS, NOT_FOUND, error_response, id_param
@extend_schema(parameters=[id_param("pk", "Store id.")],
               responses={200: MySerializer, **AUTH_ERRORS, **NOT_FOUND, 409: error_response("why")})
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from .serializers import ErrorSerializer


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


def id_param(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.INT, OpenApiParameter.PATH, description=description)


AUTH_ERRORS = {
    401: error_response("Not authenticated: send a session cookie or 'Authorization: Token <key>'."),
    403: error_response("Authenticated but not staff (or CSRF failed for a session POST)."),
}
NOT_FOUND = {404: error_response("No such object in your organizations (another organization's ids are 404 too).")}
BAD_INPUT = {400: error_response("Invalid input: unknown fields, wrong types, bad JSON; details.fields says which.")}
TOO_LARGE = {413: error_response("The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.")}
UNSUPPORTED = {415: error_response("The body is not application/json.")}
THROTTLED = {429: error_response("Too many requests: wait details.retry_after_seconds (also in Retry-After).")}
