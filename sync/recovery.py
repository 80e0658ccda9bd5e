"""Recovery that leads to the fix (issue 18): what a failure asks of the operator, and clearing a connection's
needs-reauth once the upstream accepts it again. Thin: writes go through the run policy and activity."""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

from core import clock
from core.redaction import redact

from .activity import activity_record
from .models import ActivityLevel, Lane, QueueState, SyncQueue
from .registry import connection_model

# Text fragments of an authentication refusal (the client classifies 401/403/invalid_grant as AuthError; the
# message the engine stores starts with the status).
AUTH_MARKERS = ("HTTP 401", "HTTP 403", "invalid_grant", "AuthError", "re-authorisation", "Unauthorized")


def is_auth_failure(text: str) -> bool:
    return any(marker in (text or "") for marker in AUTH_MARKERS)


def reconnect_url(connection) -> str:
    """Where a staff user re-authorises a connection: the connector's ``reconnect_path`` (OAuth), else
    ``/connectors/<kind>/connect/<id>/`` when mounted, else the connection's admin page (new credentials)."""
    from sync.registry import UnknownKind, get_connector

    try:
        declared = get_connector(connection.kind).reconnect_path
    except (UnknownKind, ImportError):
        declared = None
    if declared is not None:
        return declared(connection)
    candidate = f"/connectors/{connection.kind}/connect/{connection.pk}/"
    try:
        resolve(candidate)
        return candidate
    except Resolver404:
        pass
    return connection_admin_url(connection)


def connection_admin_url(connection) -> str:
    try:
        return reverse("admin:connectors_connection_change", args=[connection.pk])
    except NoReverseMatch:
        return ""


def queue_advice(queue: SyncQueue) -> dict:
    """What the queue page tells the operator to do, and where: ``kind`` is auth | retry | none."""
    connection = queue.connection
    error = queue.last_error or queue.fetch_error or ""
    if connection.needs_reauth or (queue.fetch_error and is_auth_failure(queue.fetch_error)):
        return {
            "kind": "auth",
            "text": "The upstream refused our credentials: reconnect the connection (new credentials or the "
            "OAuth reconnect), then resume this run. Retrying before that fails the same way.",
            "url": reconnect_url(connection),
            "link_text": f"Reconnect {connection.name}",
        }
    if queue.action_required:
        return {
            "kind": "retry",
            "text": "Retry the failed lines, or force the queue done to skip them."
            if queue.failed_count
            else "Retry the run (it fetches again from where it stopped), or force it done.",
            "url": "",
            "link_text": "",
            "error": redact(error),
        }
    return {"kind": "none", "text": "", "url": "", "link_text": ""}


def stopped_runs(connection) -> QuerySet[SyncQueue]:
    """Runs of this connection that an authentication failure stopped and that can be resumed (retried)."""
    return SyncQueue.objects.filter(
        connection=connection,
        lane=Lane.RUN,
        is_active=False,
        action_required=True,
        state__in=[QueueState.FAILED, QueueState.PARTIAL],
    ).order_by("-created_at", "-id")


def connection_reauthorized(*, connection, actor=None, how: str = "test connection") -> bool:
    """The upstream accepted the connection again: clear needs-reauth (the red banner goes), health ok, and
    the run policy's paused units resume. Returns True when the flag was set and is now cleared."""
    from . import runpolicy

    Connection = connection_model()
    cleared = Connection.objects.filter(pk=connection.pk, needs_reauth=True).update(
        needs_reauth=False, health="ok", consecutive_failures=0, last_error="", last_checked_at=clock.now()
    )
    connection.needs_reauth = False
    if not cleared:
        return False
    try:
        runpolicy.connection_resume(connection)
    except Exception as exc:  # a kind without a policy must not keep the flag set
        activity_record(
            event="connection.resume_failed",
            connection=connection,
            actor=actor,
            level=ActivityLevel.WARNING,
            message=f"schedules not resumed: {redact(exc)}",
        )
    activity_record(
        event="connection.reauthorized",
        connection=connection,
        actor=actor,
        message=f"{connection.name}: the upstream accepted the credentials ({how}); re-authorisation cleared",
    )
    return True
