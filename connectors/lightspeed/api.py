"""REST: trigger a Lightspeed sync (202 Accepted + Location) and poll the run it started.

Thin views: org-scoped reads come from selectors, the run from sync.services.sync_start. The trigger never
writes SyncStatus; the engine does (SYNCING / SUCCESS / FAILED). Ids are serialised as strings and times
as ISO 8601, so no database value can break a JSON consumer.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from connectors.models import Connection
from sync.api.openapi import error_response
from sync.api.throttles import SyncTriggerThrottle
from sync.api.views import idempotency_key
from sync.models import Origin, SyncQueue
from sync.services import sync_start

from . import selectors


class RunSerializer(serializers.Serializer):
    queue_id = serializers.CharField(help_text="The run's queue id, as a string (ids outgrow JavaScript numbers).")
    connection_id = serializers.CharField()
    resource = serializers.CharField()
    state = serializers.CharField(help_text="draft, processing, done, partial, failed or cancelled")
    created = serializers.BooleanField(help_text="False when an active run (or the same Idempotency-Key) was returned")
    total = serializers.CharField(help_text="Lines in the run so far (string)")
    done = serializers.CharField()
    failed = serializers.CharField()
    cursor_from = serializers.CharField(help_text="The version cursor the run started after (string)")
    cursor_to = serializers.CharField()
    last_error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class TriggerQuerySerializer(serializers.Serializer):
    full_scan = serializers.BooleanField(required=False, default=False)


def run_payload(queue: SyncQueue, *, created: bool) -> dict:
    return RunSerializer(
        {
            "queue_id": str(queue.pk),
            "connection_id": str(queue.connection_id),
            "resource": queue.resource,
            "state": queue.state,
            "created": created,
            "total": str(queue.total_count),
            "done": str(queue.done_count),
            "failed": str(queue.failed_count),
            "cursor_from": queue.cursor_from,
            "cursor_to": queue.cursor_to,
            "last_error": queue.last_error,
            "created_at": queue.created_at,
            "started_at": queue.started_at,
            "finished_at": queue.finished_at,
        }
    ).data


class SyncTriggerView(APIView):
    permission_classes = [IsAdminUser]
    throttle_scope = "sync-trigger"
    throttle_classes = [SyncTriggerThrottle]

    @extend_schema(
        operation_id="lightspeed_sync_trigger",
        summary="Start a Lightspeed sync of one resource",
        request=None,
        parameters=[
            OpenApiParameter(
                "resource", OpenApiTypes.STR, OpenApiParameter.PATH, enum=["customers", "products", "customer_groups"]
            ),
            OpenApiParameter(
                "full_scan",
                OpenApiTypes.BOOL,
                OpenApiParameter.QUERY,
                required=False,
                description="Ignore the stored version cursor and fetch everything",
            ),
            OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False),
        ],
        responses={
            202: OpenApiResponse(RunSerializer, description="Accepted; poll the Location header"),
            404: OpenApiResponse(description="No such Lightspeed connection in your organizations"),
            400: error_response(
                "No such resource for Lightspeed (the message lists the ones that exist), a full_scan that is not "
                "a boolean, or an Idempotency-Key that is not 1-255 visible ASCII characters"
            ),
            409: error_response("The connection needs re-authorisation or is disabled"),
            422: error_response("Idempotency-Key reused with different parameters"),
        },
    )
    def post(self, request, connection_id: int, resource: str):
        try:
            connection = selectors.connection_get(user=request.user, connection_id=connection_id)
        except Connection.DoesNotExist:
            raise NotFound("No such Lightspeed connection.") from None
        query = TriggerQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)  # full_scan=banana is a 400, not a silent false
        key = idempotency_key(request)
        # A SyncServiceError becomes the error shape with its status and code (sync.api.exceptions).
        result = sync_start(
            connection=connection,
            resource=resource,
            origin=Origin.API,
            actor=request.user,
            full_scan=query.validated_data["full_scan"],
            idempotency_key=key,
        )
        queue = result.queue
        queue.refresh_from_db()
        location = request.build_absolute_uri(reverse("lightspeed-api:run-detail", args=[queue.pk]))
        return Response(
            run_payload(queue, created=result.created), status=status.HTTP_202_ACCEPTED, headers={"Location": location}
        )


class RunDetailView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="lightspeed_run_detail",
        summary="Poll a Lightspeed run",
        responses={200: RunSerializer, 404: OpenApiResponse(description="Not found")},
    )
    def get(self, request, queue_id: int):
        try:
            queue = selectors.queue_get(user=request.user, queue_id=queue_id)
        except SyncQueue.DoesNotExist:
            raise NotFound("No such Lightspeed run.") from None
        return Response(run_payload(queue, created=False))
