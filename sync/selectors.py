"""Reads. Every list an interface shows is filtered by the caller's organizations here."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Organization, SyncActivity, SyncQueue, SyncQueueLine, SyncStatus
from .registry import connection_model


def organization_ids_for(user) -> list[int] | None:
    """None means every organization (superusers); otherwise the ids the user is a member of."""
    if user is None or not getattr(user, "is_authenticated", False):
        return []
    if user.is_superuser:
        return None
    return list(user.memberships.values_list("organization_id", flat=True))


def scope(qs: QuerySet, user, field: str = "organization_id") -> QuerySet:
    ids = organization_ids_for(user)
    return qs if ids is None else qs.filter(**{f"{field}__in": ids})


def organization_list(*, user) -> QuerySet[Organization]:
    return scope(Organization.objects.all(), user, "id")


def connection_list(*, user):
    Connection = connection_model()
    return scope(Connection.objects.select_related("organization"), user)


def queue_list(*, user, filters: dict | None = None) -> QuerySet[SyncQueue]:
    qs = scope(SyncQueue.objects.select_related("connection", "organization", "created_by"), user)
    filters = filters or {}
    for key in ("state", "resource", "origin", "connection_id", "lane"):
        if filters.get(key) not in (None, ""):
            qs = qs.filter(**{key: filters[key]})
    if filters.get("action_required") is not None:
        qs = qs.filter(action_required=filters["action_required"])
    return qs


def queue_get(*, user, queue_id: int) -> SyncQueue:
    return queue_list(user=user).get(pk=queue_id)


def queue_lines(*, queue: SyncQueue, state: str | None = None) -> QuerySet[SyncQueueLine]:
    qs = SyncQueueLine.objects.filter(queue=queue).order_by("id")
    return qs.filter(state=state) if state else qs


def queue_activity(*, queue: SyncQueue) -> QuerySet[SyncActivity]:
    return SyncActivity.objects.filter(queue=queue).select_related("actor").order_by("created_at", "id")


def status_list(*, user, connection_id: int | None = None) -> QuerySet[SyncStatus]:
    qs = scope(SyncStatus.objects.select_related("connection", "last_queue"), user)
    return qs.filter(connection_id=connection_id) if connection_id else qs


def setting_get(key: str, *, organization=None, default=None):
    """Organization value first, then the global one, then ``default``."""
    from .models import SystemSetting

    if organization is not None:
        row = SystemSetting.objects.filter(organization=organization, key=key).values_list("value", flat=True).first()
        if row is not None:
            return row
    row = SystemSetting.objects.filter(organization__isnull=True, key=key).values_list("value", flat=True).first()
    return default if row is None else row


# --- Unscoped reads for trusted callers (manage.py, tasks): no user, every organization ------------------
def status_all(*, connection_id: int | None = None) -> QuerySet[SyncStatus]:
    qs = SyncStatus.objects.select_related("connection", "last_queue").order_by("connection_id", "resource")
    return qs.filter(connection_id=connection_id) if connection_id else qs


def queues_active(*, connection_id: int | None = None) -> QuerySet[SyncQueue]:
    qs = SyncQueue.objects.filter(is_active=True).select_related("connection").order_by("id")
    return qs.filter(connection_id=connection_id) if connection_id else qs


def queue_by_id(queue_id: int) -> SyncQueue:
    return SyncQueue.objects.select_related("connection", "organization").get(pk=queue_id)


def queue_progress_line(queue: SyncQueue) -> str:
    """One human line about a queue, for progress output and listings (sync.progress computes it)."""
    from .progress import progress_line

    return progress_line(queue)
