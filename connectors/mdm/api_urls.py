"""MDM-specific REST endpoints. Mounted at /api/mdm/. Staff only (DRF default IsAdminUser)."""

from django.urls import path

import sync.api.converters  # noqa: F401  registers <sync_id:...> / <sync_resource:...>

from . import api

urlpatterns = [
    path("exports", api.ExportRunListView.as_view(), name="mdm-export-list"),
    path("exports/<sync_id:pk>", api.ExportRunDetailView.as_view(), name="mdm-export-detail"),
    path("items", api.ItemsView.as_view(), name="mdm-items"),
    path("items/cache", api.ItemsCacheStatusView.as_view(), name="mdm-items-cache"),
    path("schedule", api.ScheduleView.as_view(), name="mdm-schedule"),
]
