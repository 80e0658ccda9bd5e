"""Engine REST endpoints (triggers, queues, statuses, connections), mounted at /api/. See docs/api.md.

Paths have no trailing slash. Ids use a bounded converter: a value that could overflow the database
column (or a negative one) simply matches no route and gets the JSON 404."""

from django.urls import path, register_converter

from . import views


class IdConverter:
    """Positive ids of at most 18 digits (fits a signed 64-bit column)."""

    regex = "[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))


class ResourceConverter:
    regex = "[A-Za-z0-9_.-]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return str(value)


register_converter(IdConverter, "sync_id")
register_converter(ResourceConverter, "sync_resource")

urlpatterns = [
    path("connections", views.ConnectionListView.as_view(), name="api-connection-list"),
    path("connections/<sync_id:connection_id>", views.ConnectionDetailView.as_view(), name="api-connection-detail"),
    path(
        "connections/<sync_id:connection_id>/health", views.ConnectionHealthView.as_view(), name="api-connection-health"
    ),
    path("connections/<sync_id:connection_id>/test", views.ConnectionTestView.as_view(), name="api-connection-test"),
    path(
        "connections/<sync_id:connection_id>/statuses",
        views.ConnectionStatusListView.as_view(),
        name="api-connection-statuses",
    ),
    path(
        "connections/<sync_id:connection_id>/statuses/<sync_resource:resource>",
        views.StatusDetailView.as_view(),
        name="api-status-detail",
    ),
    path(
        "connections/<sync_id:connection_id>/resources/<sync_resource:resource>/sync",
        views.SyncTriggerView.as_view(),
        name="api-sync-trigger",
    ),
    path("statuses", views.StatusListView.as_view(), name="api-status-list"),
    path("queues", views.QueueListView.as_view(), name="api-queue-list"),
    path("queues/<sync_id:queue_id>", views.QueueDetailView.as_view(), name="api-queue-detail"),
    path("queues/<sync_id:queue_id>/lines", views.QueueLinesView.as_view(), name="api-queue-lines"),
    path("queues/<sync_id:queue_id>/activity", views.QueueActivityView.as_view(), name="api-queue-activity"),
    path("queues/<sync_id:queue_id>/retry", views.QueueRetryView.as_view(), name="api-queue-retry"),
    path("queues/<sync_id:queue_id>/force-done", views.QueueForceDoneView.as_view(), name="api-queue-force-done"),
    path("queues/<sync_id:queue_id>/cancel", views.QueueCancelView.as_view(), name="api-queue-cancel"),
]
