"""Lightspeed-specific REST endpoints. Mounted at /api/lightspeed/."""

from django.urls import path

import sync.api.converters  # noqa: F401  registers <sync_id:...> / <sync_resource:...>

from . import api

app_name = "lightspeed-api"

urlpatterns = [
    path(
        "connections/<sync_id:connection_id>/<sync_resource:resource>/sync",
        api.SyncTriggerView.as_view(),
        name="sync-trigger",
    ),
    path("runs/<sync_id:queue_id>", api.RunDetailView.as_view(), name="run-detail"),
]
