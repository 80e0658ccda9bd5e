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


# --- Schema post-processing (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) ---------------------------------
# What every /api/ route can answer whatever its view says, because it comes from the global layers (auth,
# permissions, throttles, the parser, the URL resolver, JsonErrorMiddleware, handler500). Adding them here,
# once, keeps the schema true for views added or moved later.
_ALWAYS = {
    "401": "Not authenticated: no or bad credentials ('WWW-Authenticate: Token').",
    "403": "Authenticated but not allowed (not staff, not an operator of this organization, CSRF).",
    "404": "No such route or object in your organizations (another organization's ids are 404 too).",
    "405": "Method not allowed on this route.",
    "429": "Too many requests: wait details.retry_after_seconds (also in Retry-After).",
    "500": "A bug on our side (logged); the body never holds internals.",
}
_WITH_INPUT = {"400": "Invalid input: unknown fields, wrong types, bad JSON, too deep; details say which."}
_WITH_BODY = {
    "413": "The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.",
    "415": "The body is not application/json.",
}
_ID_MAX = 2**63 - 1


def _error_ref(result: dict) -> dict:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    name = "Error" if "Error" in schemas else next((n for n in schemas if n.endswith("Error")), "Error")
    return {"$ref": f"#/components/schemas/{name}"}


def document_global_errors(result, generator, request, public):
    """drf-spectacular post-processing hook: add the error answers of the global layers to every /api/
    operation, in the one error shape; bound id-like parameters as the converters do."""
    ref = _error_ref(result)
    for path, item in (result.get("paths") or {}).items():
        if not path.startswith("/api/") or path.startswith(("/api/schema", "/api/docs")):
            continue
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            wanted = dict(_ALWAYS)
            if operation.get("parameters") or method != "get":
                wanted.update(_WITH_INPUT)
            if method in ("post", "put", "patch"):
                wanted.update(_WITH_BODY)
            for code, description in wanted.items():
                responses.setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": ref}}}
                )
            for param in operation.get("parameters") or []:
                if param["in"] == "query":
                    # DRF reads "?x=" as "x not given" (HTML-form semantics), for filters and paging alike.
                    param.setdefault("allowEmptyValue", True)
                schema = param.get("schema") or {}
                if param["in"] == "query" and param["name"] == "page_size" and schema.get("type") == "integer":
                    schema.setdefault("minimum", 1)
                if schema.get("type") == "integer" and (param["in"] == "path" or param["name"] == "organization"):
                    schema.setdefault("minimum", 1)
                    schema.setdefault("maximum", _ID_MAX)
    _close_strict_bodies(result)
    _describe_trigger_params(result)
    return result


_NO_NUL = "^[^\\u0000]*$"


def _json_value_schema(depth: int, max_depth: int) -> dict:
    """What sync.api.serializers._check_json_value accepts at ``depth``: JSON without NUL characters (jsonb
    refuses them), containers nested at most ``max_depth`` levels."""
    deeper = _json_value_schema(depth + 1, max_depth) if depth < max_depth else None
    array = {"type": "array", "items": deeper} if deeper else {"type": "array", "maxItems": 0}
    # Keys may not hold NUL either; OpenAPI 3.0 has no propertyNames to say so (the description does).
    obj = {"type": "object"}
    obj.update({"additionalProperties": deeper} if deeper else {"maxProperties": 0})
    return {
        # A top-level value of params may not be null (DictField(child=JSONField())); nested values may.
        "nullable": depth > 1,
        "anyOf": [{"type": "string", "pattern": _NO_NUL}, {"type": "number"}, {"type": "boolean"}, array, obj],
    }


def _describe_trigger_params(result: dict) -> None:
    from .serializers import MAX_PARAMS_DEPTH

    for name in ("TriggerRequest", "TriggerRequestRequest"):
        schema = (result.get("components", {}).get("schemas") or {}).get(name)
        if schema and "params" in schema.get("properties", {}):
            params = schema["properties"]["params"]
            params.pop("additionalProperties", None)
            params.update(
                type="object",
                additionalProperties=_json_value_schema(1, MAX_PARAMS_DEPTH),
                description=(
                    params.get("description", "") + f" JSON without NUL characters (in keys or values), "
                    f"nested at most {MAX_PARAMS_DEPTH} levels."
                ).strip(),
            )


def _close_strict_bodies(result: dict) -> None:
    """Request bodies of StrictSerializer subclasses refuse unknown fields: say so (additionalProperties)."""
    from .serializers import StrictSerializer

    names, todo = set(), list(StrictSerializer.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        base = cls.__name__.removesuffix("Serializer")
        names |= {base, base + "Request"}
    for name, schema in (result.get("components", {}).get("schemas") or {}).items():
        if name in names and schema.get("type") == "object":
            schema["additionalProperties"] = False
