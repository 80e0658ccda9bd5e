"""Tiendanube-specific REST endpoints. Mounted at /api/tiendanube/."""

from django.urls import path

import sync.api.converters  # noqa: F401  registers <sync_id:...> / <sync_resource:...>

from . import api

urlpatterns = [
    path("scheduler/status/", api.SchedulerStatusView.as_view(), name="tiendanube-scheduler-status"),
    path("scheduler/initialize/", api.SchedulerInitializeView.as_view(), name="tiendanube-scheduler-initialize"),
    path("stores/sync/", api.StoreSyncAllView.as_view(), name="tiendanube-sync-all"),
    path("stores/<sync_id:pk>/sync/", api.StoreSyncView.as_view(), name="tiendanube-store-sync"),
    path("stores/<sync_id:pk>/token/", api.StoreTokenView.as_view(), name="tiendanube-store-token"),
    path("health/", api.HealthView.as_view(), name="tiendanube-health"),
    path("pending/", api.PendingListView.as_view(), name="tiendanube-pending"),
    path("pending/<sync_id:pk>/claim/", api.PendingClaimView.as_view(), name="tiendanube-pending-claim"),
]
