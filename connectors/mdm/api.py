"""Thin staff-only API views over the MDM services/selectors. Mounted at /api/mdm/."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from sync.api.exceptions import ApiError
from sync.api.throttles import SyncTriggerThrottle
from sync.selectors import scope

from . import selectors, services
from .models import ExportRun
from .readcache import ItemsUnavailable


class CanOperateExport(IsAdminUser):
    """The admin's rule (connectors/mdm/admin.py): the export is one installation-wide job owned by the
    organization of the MDM account, so only superusers and staff members of that organization may see its
    runs, start one, or pause/resume its schedule. Other staff get a 403, as in the admin."""

    message = "Only staff of the organization that owns the MDM export may operate it."

    def has_permission(self, request, view) -> bool:
        return super().has_permission(request, view) and selectors.export_operable_by(request.user)


class ExportRunSerializer(serializers.ModelSerializer):
    s3_location = serializers.CharField(read_only=True)

    class Meta:
        model = ExportRun
        fields = [
            "id",
            "origin",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "item_count",
            "rejected_count",
            "s3_location",
            "etag",
            "error_stage",
            "error_type",
            "error_message",
            "skip_reason",
            "consecutive_failures",
        ]
        read_only_fields = fields


class ExportRunListView(ListAPIView):
    serializer_class = ExportRunSerializer
    permission_classes = [CanOperateExport]
    throttle_scope = "sync-trigger"

    def get_throttles(self):
        return [SyncTriggerThrottle()] if self.request.method == "POST" else []

    def get_queryset(self):
        return scope(selectors.export_run_list(), self.request.user)

    @extend_schema(request=None, responses={202: ExportRunSerializer})
    def post(self, request):
        """Start an export now (runs in a worker); poll the Location."""
        run = services.mdm_export_enqueue(actor=request.user, origin="api")
        run.refresh_from_db()
        location = request.build_absolute_uri(reverse("mdm-export-detail", args=[run.pk]))
        return Response(ExportRunSerializer(run).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class ExportRunDetailView(RetrieveAPIView):
    serializer_class = ExportRunSerializer
    permission_classes = [CanOperateExport]

    def get_queryset(self):
        return scope(selectors.export_run_list(), self.request.user)


class ItemsView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("sku", str, description="exact SKU, or several comma-separated")],
        responses={200: dict, 503: dict},
    )
    def get(self, request):
        try:
            items, snap = selectors.ineligible_items(sku=request.query_params.get("sku"))
        except ItemsUnavailable as exc:
            raise ApiError(
                f"ineligible items unavailable: {exc}",
                code="items_unavailable",
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            ) from None
        return Response(
            {
                "count": len(items),
                "total": snap.count,
                "loaded_at": snap.loaded_at.isoformat() if snap.loaded_at else None,
                "etag": snap.etag,
                "stale": snap.stale,
                "items": items,
            }
        )


class ItemsCacheStatusView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response(selectors.ineligible_items_cache_status())


class ScheduleActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["pause", "resume"])


class ScheduleView(APIView):
    permission_classes = [CanOperateExport]

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response(services.schedule_show())

    @extend_schema(
        request=ScheduleActionSerializer,
        responses={200: dict, 400: dict},
    )
    def post(self, request):
        ser = ScheduleActionSerializer(data=request.data)
        ser.is_valid(raise_exception=True)  # a 400 in the error shape, also for a body that is not an object
        if ser.validated_data["action"] == "pause":
            return Response(services.schedule_pause(actor=request.user))
        return Response(services.schedule_resume(actor=request.user))
