"""Engine REST endpoints (triggers, queues, statuses, connections), mounted at /api/. See docs/api.md.

Paths have no trailing slash. Ids use a bounded converter: a value that could overflow the database
column (or a negative one) simply matches no route and gets the JSON 404."""

from django.urls import path

from . import converters, views

_ = converters  # registers <sync_id:...> and <sync_resource:...>


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
    path(
        "queues/<sync_id:queue_id>/apply-deletions",
        views.QueueApplyDeletionsView.as_view(),
        name="api-queue-apply-deletions",
    ),
    path("queues/<sync_id:queue_id>/cancel", views.QueueCancelView.as_view(), name="api-queue-cancel"),
]
