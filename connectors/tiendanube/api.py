"""Thin staff-only, organization-scoped REST views. Another organization's store answers 404."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from connectors.models import Connection
from sync.api.exceptions import ApiError
from sync.api.serializers import OrganizationParamSerializer
from sync.api.throttles import SyncTriggerThrottle
from sync.models import Origin
from sync.selectors import organization_list

from . import health, oauth, selectors, stores
from .errors import TiendanubeError


def _store(request, pk: int) -> Connection:
    try:
        return selectors.store_get(user=request.user, connection_id=pk)
    except Connection.DoesNotExist:
        raise Http404("no such store") from None


def _api_error(exc: Exception) -> ApiError:
    """A service refusal in the project's one error shape (docs/api.md)."""
    return ApiError(str(exc), code=exc.code, status_code=exc.http_status)


class StoreRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    store_id = serializers.CharField()
    organization = serializers.IntegerField()
    tier = serializers.CharField(allow_null=True)
    state = serializers.CharField()
    needs_reauth = serializers.BooleanField()
    failures_in_row = serializers.IntegerField()
    syncing = serializers.BooleanField()
    next_sync_at = serializers.DateTimeField(allow_null=True)
    last_sync_at = serializers.DateTimeField(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)


class SchedulerStatusSerializer(serializers.Serializer):
    running = serializers.BooleanField()
    total = serializers.IntegerField()
    active = serializers.IntegerField()
    pending = serializers.IntegerField()
    failed = serializers.IntegerField()
    syncing = serializers.IntegerField()
    stores = StoreRowSerializer(many=True)


class SchedulerStatusView(APIView):
    @extend_schema(responses=SchedulerStatusSerializer)
    def get(self, request):
        return Response(SchedulerStatusSerializer(selectors.scheduler_status(user=request.user)).data)


class SchedulerInitializeView(APIView):
    @extend_schema(request=None, responses={200: dict})
    def post(self, request):
        n = stores.schedules_initialize(connections=selectors.store_list(user=request.user))
        return Response({"initialized": n})


class StoreSyncView(APIView):
    throttle_scope = "sync-trigger"
    throttle_classes = [SyncTriggerThrottle]  # no DEFAULT_THROTTLE_CLASSES: a throttle_scope alone does nothing

    @extend_schema(operation_id="tiendanube_store_sync", request=None, responses={202: dict, 409: dict})
    def post(self, request, pk: int):
        store = _store(request, pk)
        try:
            enqueued = stores.store_enqueue_sync(connection=store, origin=Origin.API, actor=request.user)
        except TiendanubeError as exc:
            raise _api_error(exc) from None
        return Response(
            {"store": store.pk, "status": "enqueued" if enqueued else "already queued or running"},
            status=status.HTTP_202_ACCEPTED,
        )


class StoreSyncAllView(APIView):
    throttle_scope = "sync-trigger"
    throttle_classes = [SyncTriggerThrottle]  # no DEFAULT_THROTTLE_CLASSES: a throttle_scope alone does nothing

    @extend_schema(operation_id="tiendanube_stores_sync_all", request=None, responses={202: dict})
    def post(self, request):
        result = stores.stores_enqueue_all(
            connections=selectors.store_list(user=request.user), origin=Origin.API, actor=request.user
        )
        return Response({"stores": {str(k): v for k, v in result.items()}}, status=status.HTTP_202_ACCEPTED)


class StoreTokenView(APIView):
    throttle_scope = "sync-trigger"
    throttle_classes = [SyncTriggerThrottle]  # a live call upstream, like POST /api/connections/{id}/test

    @extend_schema(responses={200: dict})
    def get(self, request, pk: int):
        return Response(health.token_diagnose(_store(request, pk)))


class HealthView(APIView):
    """GET: the last report (the 30-minute schedule), or ?fresh=1 to check now (the caller's stores)."""

    throttle_scope = "sync-trigger"

    def get_throttles(self):
        # ?fresh=1 calls Tiendanube once per store: throttled like the other live checks.
        return [SyncTriggerThrottle()] if self.request.query_params.get("fresh") in ("1", "true") else []

    @extend_schema(responses={200: dict})
    def get(self, request):
        report = selectors.health_last()
        if report is None or request.query_params.get("fresh") in ("1", "true"):
            report = health.health_check(connections=selectors.store_list(user=request.user).filter(is_active=True))
        mine = {str(c) for c in selectors.store_list(user=request.user).values_list("pk", flat=True)}
        report = {**report, "stores": [s for s in report.get("stores", []) if str(s["connection"]) in mine]}
        return Response(report, status=200 if report.get("ok") else 503)


class ClaimRequestSerializer(serializers.Serializer):
    """Documents the body: the organization the store is claimed for (validated by OrganizationParamSerializer)."""

    organization = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class PendingListView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request):
        rows = (
            selectors.pending_install_list(user=request.user)
            .filter(claimed_at__isnull=True)
            .values("id", "store_id", "scope", "created_at")
        )
        return Response({"pending": list(rows)})


class PendingClaimView(APIView):
    @extend_schema(request=ClaimRequestSerializer, responses={200: dict})
    def post(self, request, pk: int):
        org_id = OrganizationParamSerializer.organization_id(request.data, required=True)
        pending = selectors.pending_install_list(user=request.user).filter(pk=pk, claimed_at__isnull=True).first()
        org = organization_list(user=request.user).filter(pk=org_id).first()
        if pending is None or org is None:
            raise Http404("no such pending store or organization")
        try:
            conn = oauth.pending_claim(pending=pending, organization=org, actor=request.user)
        except TiendanubeError as exc:
            raise _api_error(exc) from None
        return Response({"connection": conn.pk, "store_id": conn.external_account_id})
