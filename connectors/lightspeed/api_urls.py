"""Lightspeed-specific REST endpoints. Mounted at /api/lightspeed/."""

from django.urls import path

from . import api

app_name = "lightspeed-api"

urlpatterns = [
    path("connections/<int:connection_id>/<slug:resource>/sync", api.SyncTriggerView.as_view(), name="sync-trigger"),
    path("runs/<int:queue_id>", api.RunDetailView.as_view(), name="run-detail"),
]
