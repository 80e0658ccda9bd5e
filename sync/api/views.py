"""Engine REST endpoints. Thin: validate input, call sync.services / sync.selectors, serialize.

Every view is staff-only and scoped to the caller's organizations; another organization's object is a
404. Errors come out of sync.api.exceptions.api_exception_handler in one JSON shape."""

from __future__ import annotations

import hashlib
import logging
import re
from contextlib import contextmanager

from django.core.cache import cache
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from core import clock
from core.errors import AuthError, UpstreamError
from core.redaction import redact
from sync import selectors, services
from sync.models import Origin, StatusState, SyncActivity, SyncQueue, SyncQueueLine

from . import serializers as s
from .exceptions import ApiError
from .openapi import AUTH_ERRORS, BAD_INPUT, NOT_FOUND, THROTTLED, TOO_LARGE, UNSUPPORTED, error_response, id_param
from .pagination import StandardPagination
from .parsers import LimitedJSONParser
from .permissions import IsStaff, OrganizationScoped
from .throttles import SyncTriggerThrottle

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
IDEMPOTENCY_LOCK_SECONDS = 60
REPLAY_HEADER = "Idempotent-Replayed"
_REPLAYED_HEADERS = ("Location",)


def idempotency_key(request) -> str:
    """The request's Idempotency-Key header ('' when absent); 1-255 visible ASCII characters or a 400."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if key and not IDEMPOTENCY_KEY_RE.match(key):
        raise ApiError(
            "Idempotency-Key must be 1-255 visible ASCII characters.",
            code="invalid",
            details={"fields": {"Idempotency-Key": ["Invalid value."]}},
        )
    return key


# --- Documentation helpers -------------------------------------------------------------------------------
_err = error_response
_id_param = id_param

CONNECTION_ID = _id_param("connection_id", "Connection id.")
QUEUE_ID = _id_param("queue_id", "Queue id.")
RESOURCE = OpenApiParameter(
    "resource",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    pattern=r"^[A-Za-z0-9_.-]{1,64}$",
    description="Resource name of the connection's kind, e.g. customers, products, orders.",
)


# --- Base classes -----------------------------------------------------------------------------------------
class ApiView(generics.GenericAPIView):
    """Base for every engine endpoint. Connector engineers may subclass it for their own /api/<kind>/ views."""

    # Token first: an anonymous call then gets 401 + "WWW-Authenticate: Token" (session-first answers 403).
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsStaff, OrganizationScoped]
    parser_classes = [LimitedJSONParser]
    pagination_class = StandardPagination
    # Set per route with ``as_view(kind=...)``: a vendor-prefixed alias (``/api/lightspeed/...``) then only
    # reaches that kind's connections and runs; anything else is the same 404 as a missing id.
    kind: str | None = None

    def filters(self, serializer_class) -> dict:
        """Validate the query string with ``serializer_class``; 400 on a bad value."""
        ser = serializer_class(data=self.request.query_params)
        ser.is_valid(raise_exception=True)
        return {k: v for k, v in ser.validated_data.items() if v is not None}

    def get_connection(self):
        """The caller's connection from the URL, or 404."""
        conns = selectors.connection_list(user=self.request.user)
        if self.kind:
            conns = conns.filter(kind=self.kind)
        conn = conns.filter(pk=self.kwargs["connection_id"]).first()
        if conn is None:
            raise ApiError("No such connection in your organizations.", code="not_found", status_code=404)
        self.check_object_permissions(self.request, conn)
        return conn

    def get_queue(self):
        queues = selectors.queue_list(user=self.request.user)
        if self.kind:
            queues = queues.filter(connection__kind=self.kind)
        queue = queues.filter(pk=self.kwargs["queue_id"]).first()
        if queue is None:
            raise ApiError("No such queue in your organizations.", code="not_found", status_code=404)
        self.check_object_permissions(self.request, queue)
        return queue

    def fake(self) -> bool:
        return getattr(self, "swagger_fake_view", False)


# --- Connections ------------------------------------------------------------------------------------------
@extend_schema(tags=["connections"])
class ConnectionListView(ApiView, generics.ListAPIView):
    serializer_class = s.ConnectionSerializer

    @extend_schema(
        summary="List connections (secrets are never included)",
        parameters=[s.ConnectionFilterSerializer],
        responses={200: s.ConnectionSerializer(many=True), **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = selectors.connection_list(user=self.request.user).order_by("id")
        if self.fake():
            return qs
        f = self.filters(s.ConnectionFilterSerializer)
        if "kind" in f:
            qs = qs.filter(kind=f["kind"])
        if "needs_reauth" in f:
            qs = qs.filter(needs_reauth=f["needs_reauth"])
        return qs


@extend_schema(tags=["connections"])
class ConnectionDetailView(ApiView):
    serializer_class = s.ConnectionSerializer

    @extend_schema(
        summary="One connection (secrets are never included)",
        parameters=[CONNECTION_ID],
        responses={200: s.ConnectionSerializer, **AUTH_ERRORS, **NOT_FOUND},
    )
    def get(self, request, connection_id: int):
        return Response(s.ConnectionSerializer(self.get_connection()).data)


@extend_schema(tags=["connections"])
class ConnectionHealthView(ApiView):
    serializer_class = s.ConnectionHealthSerializer

    @extend_schema(
        summary="Health and needs-reauth state of a connection",
        parameters=[CONNECTION_ID],
        responses={200: s.ConnectionHealthSerializer, **AUTH_ERRORS, **NOT_FOUND},
    )
    def get(self, request, connection_id: int):
        conn = self.get_connection()
        user = request.user
        active = selectors.queue_list(user=user, filters={"connection_id": conn.pk}).filter(is_active=True).count()
        failing = list(
            selectors.status_list(user=user, connection_id=conn.pk)
            .filter(state=StatusState.FAILED)
            .order_by("resource")
            .values_list("resource", flat=True)
        )
        data = {
            "connection_id": conn.pk,
            "health": conn.health,
            "needs_reauth": conn.needs_reauth,
            "is_active": conn.is_active,
            "consecutive_failures": conn.consecutive_failures,
            "last_error": redact(conn.last_error or ""),
            "last_checked_at": conn.last_checked_at,
            "active_queues": active,
            "failing_resources": failing,
        }
        return Response(s.ConnectionHealthSerializer(data).data)


@extend_schema(tags=["connections"])
class ConnectionTestView(ApiView):
    """Makes one cheap authenticated call upstream and reports what it said."""

    serializer_class = s.TestConnectionResponseSerializer
    throttle_classes = [SyncTriggerThrottle]
    throttle_scope = "sync-trigger"

    @extend_schema(
        summary="Test a connection against its upstream",
        parameters=[CONNECTION_ID],
        request=None,
        responses={
            200: s.TestConnectionResponseSerializer,
            **AUTH_ERRORS,
            **NOT_FOUND,
            **THROTTLED,
            409: _err("The connector for this kind is not installed or cannot be loaded."),
            502: _err("The upstream refused or failed (code upstream_auth_failed marks the connection needs-reauth)."),
        },
    )
    def post(self, request, connection_id: int):
        conn = self.get_connection()
        return Response(s.TestConnectionResponseSerializer(connection_test(conn, actor=request.user)).data)


def connector_for(conn):
    """The connection's connector, or 409: an unknown kind, or a connector package that fails to import,
    must answer JSON rather than a 500."""
    from sync.registry import get_connector

    try:
        return get_connector(conn.kind)
    except Exception as exc:
        log.warning("connector %s unavailable: %s", conn.kind, exc.__class__.__name__)
        raise ApiError(
            f"The {conn.kind!r} connector is not available on this server.",
            code="connector_unavailable",
            status_code=409,
        ) from None


def connection_test(conn, *, actor) -> dict:
    """Run the connector's test and record the outcome through the services. Raises API errors only."""
    connector = connector_for(conn)
    try:
        message = connector.test_connection(conn)
    except AuthError as exc:
        services.connection_mark_needs_reauth(connection=conn, reason=str(exc), actor=actor)
        raise
    except UpstreamError as exc:
        services.connection_record_result(connection=conn, ok=False, error=str(exc))
        raise
    except Exception as exc:  # a connector bug must still answer JSON, not a 500
        log.exception("test-connection on connection %s crashed", conn.pk)
        services.connection_record_result(connection=conn, ok=False, error=exc.__class__.__name__)
        raise ApiError(
            f"The {conn.kind} connector failed while testing: {exc.__class__.__name__}.",
            code="upstream_error",
            status_code=502,
        ) from None
    services.connection_record_result(connection=conn, ok=True)
    return {"ok": True, "message": redact(message), "checked_at": clock.now()}


# --- Trigger ----------------------------------------------------------------------------------------------
def idempotency_marker(organization_id: int, key: str) -> str:
    return f"synchub:idem:{organization_id}:{hashlib.sha256(key.encode()).hexdigest()}"


@contextmanager
def idempotency_lock(organization_id: int, key: str):
    """While one request with an Idempotency-Key is creating its queue, a second one with the same key
    gets 409 (retry shortly) instead of racing it. The marker lives in the shared cache; ``cache.add`` is
    atomic there (the database cache relies on its primary key), and the TTL frees it if a process dies."""
    if not key:
        yield
        return
    marker = idempotency_marker(organization_id, key)
    if not cache.add(marker, "1", timeout=IDEMPOTENCY_LOCK_SECONDS):
        raise ApiError(
            "A request with this Idempotency-Key is still being processed; retry in a second to get its result.",
            code="idempotency_key_in_progress",
            status_code=409,
            headers={"Retry-After": "1"},
        )
    try:
        yield
    finally:
        cache.delete(marker)


def trigger_full_scan(request, body) -> bool:
    """full_scan from the JSON body or the query string (Lightspeed's original form); both must agree."""
    query = s.TriggerQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    in_query = query.validated_data.get("full_scan")
    in_body = body.validated_data["full_scan"] if "full_scan" in body.initial_data else None
    if in_query is not None and in_body is not None and in_query != in_body:
        raise ApiError(
            "full_scan is given in both the query string and the body, with different values; send it once.",
            code="invalid",
            details={"fields": {"full_scan": ["Query string and body disagree."]}},
        )
    return bool(in_query if in_query is not None else body.validated_data["full_scan"])


_RESULT_MESSAGES = {
    "created": "Sync started. Poll the Location URL for progress.",
    "idempotent": "This Idempotency-Key was already used with the same body; this is the queue it created.",
    "running": "A run of this resource is already in progress for this connection; this is that run "
    "(no second run was started).",
}


@extend_schema(tags=["sync"])
class SyncTriggerView(ApiView):
    serializer_class = s.TriggerResponseSerializer
    throttle_classes = [SyncTriggerThrottle]
    throttle_scope = "sync-trigger"

    @extend_schema(
        summary="Start a sync of one resource of a connection (202 + Location)",
        description="Returns 202 at once with the queue to poll. With an `Idempotency-Key` header the same key "
        "and body return the same queue; the same key with a different body is 422; a concurrent request with "
        "the key still in progress is 409. If a run of this resource is already active, that run is returned "
        "(result=running) instead of starting a twin. `full_scan` may come in the body or as `?full_scan=` "
        "(the form of Lightspeed's original endpoint, `/api/lightspeed/connections/{id}/{resource}/sync`, "
        "which is this same view). The resources of a kind are those its connector registers.",
        parameters=[
            CONNECTION_ID,
            RESOURCE,
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                pattern=r"^[\x21-\x7e]{1,255}$",
                description="1-255 visible ASCII characters, unique per intended run.",
            ),
            s.TriggerQuerySerializer,
            OpenApiParameter(
                "Location",
                OpenApiTypes.URI,
                OpenApiParameter.HEADER,
                response=[202],
                required=True,
                description="The queue to poll (same as poll_url).",
            ),
            OpenApiParameter(
                REPLAY_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[202],
                required=False,
                enum=["true"],
                description="Present (true) when this answer is the stored first response to the same "
                "Idempotency-Key and body, repeated byte for byte.",
            ),
            OpenApiParameter(
                "Retry-After",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[409, 429],
                description="Seconds to wait before retrying.",
            ),
        ],
        request=s.TriggerRequestSerializer,
        responses={
            202: OpenApiResponse(s.TriggerResponseSerializer, description="Queued (or the existing queue)."),
            **BAD_INPUT,
            **AUTH_ERRORS,
            **NOT_FOUND,
            **TOO_LARGE,
            **UNSUPPORTED,
            **THROTTLED,
            409: _err(
                "Idempotency-Key still in progress, the connection needs re-authorisation / is disabled, "
                "or its connector is not available."
            ),
            422: _err("This Idempotency-Key was used before with a different body."),
        },
        examples=[OpenApiExample("Full scan", value={"full_scan": True, "params": {}}, request_only=True)],
    )
    def post(self, request, connection_id: int, resource: str):
        conn = self.get_connection()
        connector_for(conn)  # a kind that cannot load is a 409, not a 500 from inside sync_start
        body = s.TriggerRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        full_scan = trigger_full_scan(request, body)
        key = idempotency_key(request)
        with idempotency_lock(conn.organization_id, key):
            result = services.sync_start(
                connection=conn,
                resource=resource,
                origin=Origin.API,
                actor=request.user,
                idempotency_key=key,
                full_scan=full_scan,
                params=body.validated_data["params"],
            )
            if result.reason == "idempotent" and result.queue.idempotency_response:
                return idempotent_replay(result.queue.idempotency_response)
            # Rendered and stored while the key is still held, so no replay can find the key without it.
            response = self._trigger_response(request, conn, result)
            if key and result.created:
                SyncQueue.objects.filter(pk=result.queue.pk).update(idempotency_response=response_record(response))
        return response

    def _trigger_response(self, request, conn, result) -> HttpResponse:
        queue = selectors.queue_get(user=request.user, queue_id=result.queue.pk)
        location = request.build_absolute_uri(reverse("api-queue-detail", kwargs={"queue_id": queue.pk}))
        data = {
            "queue_id": queue.pk,
            "state": queue.state,
            "result": result.reason,
            "created": result.created,
            "message": _RESULT_MESSAGES[result.reason],
            "connection_id": conn.pk,
            "resource": queue.resource,
            "poll_url": location,
        }
        # Rendered here (always JSON) rather than content-negotiated, so a replay can repeat it byte for byte.
        body = JSONRenderer().render(s.TriggerResponseSerializer(data).data)
        return HttpResponse(
            body, status=status.HTTP_202_ACCEPTED, content_type="application/json", headers={"Location": location}
        )


# --- Idempotent replays (Stripe's contract: the same response, marked as a replay) -------------------------


def response_record(response: HttpResponse) -> dict:
    return {
        "status": response.status_code,
        "content_type": response["Content-Type"],
        "headers": {h: response[h] for h in _REPLAYED_HEADERS if h in response},
        "body": response.content.decode("utf-8"),
    }


def idempotent_replay(record: dict) -> HttpResponse:
    response = HttpResponse(
        record["body"].encode("utf-8"),
        status=record["status"],
        content_type=record["content_type"],
        headers=record.get("headers") or {},
    )
    response[REPLAY_HEADER] = "true"
    return response


# --- Statuses ---------------------------------------------------------------------------------------------
@extend_schema(tags=["status"])
class StatusListView(ApiView, generics.ListAPIView):
    serializer_class = s.SyncStatusSerializer

    @extend_schema(
        summary="Sync status of every connection and resource",
        parameters=[s.StatusFilterSerializer],
        responses={200: s.SyncStatusSerializer(many=True), **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = selectors.status_list(user=self.request.user).order_by("connection_id", "resource")
        if self.fake():
            return qs
        f = self.filters(s.StatusFilterSerializer)
        if "connection" in f:
            qs = qs.filter(connection_id=f["connection"])
        for key in ("state", "resource"):
            if key in f:
                qs = qs.filter(**{key: f[key]})
        return qs


@extend_schema(tags=["status"])
class ConnectionStatusListView(ApiView, generics.ListAPIView):
    serializer_class = s.SyncStatusSerializer

    @extend_schema(
        summary="Sync status of every resource of one connection",
        parameters=[CONNECTION_ID],
        responses={200: s.SyncStatusSerializer(many=True), **AUTH_ERRORS, **NOT_FOUND},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if self.fake():
            return selectors.status_list(user=self.request.user)
        conn = self.get_connection()
        return selectors.status_list(user=self.request.user, connection_id=conn.pk).order_by("resource")


@extend_schema(tags=["status"])
class StatusDetailView(ApiView):
    serializer_class = s.SyncStatusSerializer

    @extend_schema(
        summary="Sync status of one resource of a connection",
        parameters=[CONNECTION_ID, RESOURCE],
        responses={
            200: s.SyncStatusSerializer,
            **AUTH_ERRORS,
            404: _err("No such connection, or this resource has never been synced."),
        },
    )
    def get(self, request, connection_id: int, resource: str):
        conn = self.get_connection()
        row = selectors.status_list(user=request.user, connection_id=conn.pk).filter(resource=resource).first()
        if row is None:
            raise ApiError(
                f"No status for resource {resource!r} on this connection yet (never synced).",
                code="not_found",
                status_code=404,
            )
        return Response(s.SyncStatusSerializer(row).data)


# --- Queues -----------------------------------------------------------------------------------------------
@extend_schema(tags=["queues"])
class QueueListView(ApiView, generics.ListAPIView):
    serializer_class = s.QueueSerializer

    @extend_schema(
        summary="List queues (newest first)",
        parameters=[s.QueueFilterSerializer],
        responses={200: s.QueueSerializer(many=True), **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if self.fake():
            return selectors.queue_list(user=self.request.user)
        f = self.filters(s.QueueFilterSerializer)
        if "connection" in f:
            f["connection_id"] = f.pop("connection")
        return selectors.queue_list(user=self.request.user, filters=f)


@extend_schema(tags=["queues"])
class QueueDetailView(ApiView):
    serializer_class = s.QueueDetailSerializer

    @extend_schema(
        summary="One queue with its progress (counts, percent, started, estimated finish)",
        parameters=[QUEUE_ID],
        responses={200: s.QueueDetailSerializer, **AUTH_ERRORS, **NOT_FOUND},
    )
    def get(self, request, queue_id: int):
        return Response(s.QueueDetailSerializer(self.get_queue()).data)


@extend_schema(tags=["queues"])
class QueueLinesView(ApiView, generics.ListAPIView):
    serializer_class = s.QueueLineSerializer

    @extend_schema(
        summary="Lines of a queue (one per upstream record)",
        parameters=[QUEUE_ID, s.LineFilterSerializer],
        responses={200: s.QueueLineSerializer(many=True), **BAD_INPUT, **AUTH_ERRORS, **NOT_FOUND},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if self.fake():
            return SyncQueueLine.objects.none()
        queue = self.get_queue()
        return selectors.queue_lines(queue=queue, state=self.filters(s.LineFilterSerializer).get("state"))


@extend_schema(tags=["queues"])
class QueueActivityView(ApiView, generics.ListAPIView):
    serializer_class = s.ActivitySerializer

    @extend_schema(
        summary="Activity timeline of a queue (oldest first)",
        parameters=[QUEUE_ID],
        responses={200: s.ActivitySerializer(many=True), **AUTH_ERRORS, **NOT_FOUND},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if self.fake():
            return SyncActivity.objects.none()
        return selectors.queue_activity(queue=self.get_queue())


class QueueActionView(ApiView):
    """POST-only action on a queue; subclasses name the service function."""

    serializer_class = s.QueueDetailSerializer
    action_name = ""

    def perform(self, queue, user):  # pragma: no cover - abstract
        raise NotImplementedError

    def post(self, request, queue_id: int):
        queue = self.perform(self.get_queue(), request.user)
        return Response(s.QueueDetailSerializer(selectors.queue_get(user=request.user, queue_id=queue.pk)).data)


def _action_schema(summary: str, conflict: str):
    return extend_schema(
        tags=["queues"],
        summary=summary,
        parameters=[QUEUE_ID],
        request=None,
        responses={200: s.QueueDetailSerializer, **AUTH_ERRORS, **NOT_FOUND, 409: _err(conflict)},
    )


class QueueRetryView(QueueActionView):
    @_action_schema(
        "Retry the failed lines of a finished queue",
        "Nothing to retry, the queue is still running or was cancelled, or another run is active.",
    )
    def post(self, request, queue_id: int):
        return super().post(request, queue_id)

    def perform(self, queue, user):
        return services.queue_retry(queue=queue, actor=user)


class QueueForceDoneView(QueueActionView):
    @_action_schema(
        "Force a queue done (cancel what is left so it completes)",
        "Already done, cancelled, or lines are being processed right now.",
    )
    def post(self, request, queue_id: int):
        return super().post(request, queue_id)

    def perform(self, queue, user):
        return services.queue_force_done(queue=queue, actor=user)


class QueueCancelView(QueueActionView):
    @_action_schema("Cancel a queue (draft lines dropped, cursor unchanged)", "The queue has already finished.")
    def post(self, request, queue_id: int):
        return super().post(request, queue_id)

    def perform(self, queue, user):
        return services.queue_cancel(queue=queue, actor=user)


class QueueApplyDeletionsView(QueueActionView):
    @_action_schema(
        "Apply the deletions the mass-deletion guard held on a full scan",
        "The queue holds no deletions, is still running, or a newer run of the resource exists.",
    )
    def post(self, request, queue_id: int):
        return super().post(request, queue_id)

    def perform(self, queue, user):
        return services.queue_apply_deletions(queue=queue, actor=user)
