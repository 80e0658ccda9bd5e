"""Lightspeed's original REST paths, kept for existing clients. Mounted at /api/lightspeed/.

Both are aliases of the engine's generic views (docs/api.md, "Mapping from the original systems"), scoped to
Lightspeed connections: no second implementation. ``?full_scan=true`` on the trigger is the original form;
the resources are whatever connectors/lightspeed/connector.py registers."""

from django.urls import path

import sync.api.converters  # noqa: F401  registers <sync_id:...> / <sync_resource:...>
from sync.api.views import QueueDetailView, SyncTriggerView

app_name = "lightspeed-api"

urlpatterns = [
    path(
        "connections/<sync_id:connection_id>/<sync_resource:resource>/sync",
        SyncTriggerView.as_view(kind="lightspeed"),
        name="sync-trigger",
    ),
    path("runs/<sync_id:queue_id>", QueueDetailView.as_view(kind="lightspeed"), name="run-detail"),
]
