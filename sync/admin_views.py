"""Admin-only views: the sync dashboard, the queue page, queue actions with confirmation, progress JSON.

Thin on purpose: reads go through sync.selectors (organization-scoped), writes through sync.services.
Every view here is wrapped by ``admin_site.admin_view`` (staff login + CSRF) in sync/admin.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from django.utils.html import format_html

from core import clock
from core.redaction import redact

from . import selectors, services
from .models import LineState, QueueState, SyncQueue, SyncStatus
from .registry import connection_model

FINISHED = {QueueState.DONE, QueueState.PARTIAL, QueueState.FAILED, QueueState.CANCELLED}
LINES_PER_PAGE = 50
TIMELINE_LIMIT = 200


# --- Progress ------------------------------------------------------------------------------------------
def queue_progress(queue: SyncQueue) -> dict:
    """What a progress bar shows. While fetching, the denominator is what the upstream announced
    (``expected_total``) when it is larger than the lines fetched so far, so the bar never hits 100%
    early; a running queue is capped at 99%."""
    finished = queue.done_count + queue.failed_count + queue.cancelled_count
    total = max(queue.total_count, queue.expected_total or 0)
    running = queue.is_active and queue.state not in FINISHED
    if not running:
        percent = 100
    elif total:
        percent = min(99, int(100 * finished / total))
    else:
        percent = 0

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {
        "id": queue.pk,
        "state": queue.state,
        "running": running,
        "action_required": queue.action_required,
        "total": queue.total_count,
        "expected_total": queue.expected_total,
        "draft": queue.draft_count,
        "processing": queue.processing_count,
        "done": queue.done_count,
        "failed": queue.failed_count,
        "cancelled": queue.cancelled_count,
        "percent": percent,
        # Bar segments: done (green), failed (red), cancelled (grey); 100% wide once finished.
        "done_pct": 100.0 if not running and not total else pct(queue.done_count),
        "failed_pct": pct(queue.failed_count),
        "cancelled_pct": pct(queue.cancelled_count),
        "duration": format_duration(queue_duration(queue)),
        "last_error": redact(queue.last_error)[:500],
    }


def queue_duration(queue: SyncQueue) -> dt.timedelta | None:
    if queue.started_at is None:
        return None
    return (queue.finished_at or clock.now()) - queue.started_at


def format_duration(delta: dt.timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def progress_bar_html(queue: SyncQueue, *, live: bool = False) -> str:
    """The bar as HTML, for changelist cells. ``live`` makes the page's script poll it."""
    p = queue_progress(queue)
    url = reverse("admin:sync_syncqueue_progress", args=[queue.pk]) if live and p["running"] else ""
    return format_html(
        '<div class="sh-progress-wrap" data-progress-url="{}" data-queue="{}">'
        '<div class="sh-progress" title="{} done / {} failed / {} total">'
        '<div class="sh-bar sh-done" style="width:{}%"></div><div class="sh-bar sh-failed" style="width:{}%"></div>'
        '<div class="sh-bar sh-cancelled" style="width:{}%"></div></div>'
        '<span class="sh-progress-label" data-testid="progress-label">{}%</span> '
        '<span class="sh-progress-counts">{}/{}/{}</span></div>',
        url,
        queue.pk,
        p["done"],
        p["failed"],
        p["total"],
        p["done_pct"],
        p["failed_pct"],
        p["cancelled_pct"],
        p["percent"],
        p["done"],
        p["failed"],
        p["total"],
    )


def progress_json(request: HttpRequest, queue_id: int) -> JsonResponse:
    """Small, staff-only, organization-scoped: what the queue page polls while a queue runs."""
    try:
        queue = selectors.queue_get(user=request.user, queue_id=queue_id)
    except SyncQueue.DoesNotExist:
        raise Http404("no such queue") from None
    response = JsonResponse(queue_progress(queue))
    response["Cache-Control"] = "no-store"
    return response


# --- Dashboard -------------------------------------------------------------------------------------------
@dataclass
class ResourceRow:
    name: str
    status: SyncStatus | None
    active_queue: SyncQueue | None

    @property
    def queue(self) -> SyncQueue | None:
        """The running queue, else the last one (so a finished run shows its full bar)."""
        return self.active_queue or (self.status.last_queue if self.status else None)

    @property
    def progress_html(self) -> str:
        return progress_bar_html(self.queue, live=True) if self.queue else ""


@dataclass
class ConnectionRow:
    connection: object
    label: str
    reconnect_url: str
    resources: list[ResourceRow] = field(default_factory=list)
    error: str = ""


def reconnect_url(connection) -> str:
    """Where a staff user re-authorises a connection. Convention: a connector that supports an interactive
    (OAuth) reconnect exposes ``/connectors/<kind>/connect/<id>/``; otherwise the connection's admin page,
    where new credentials can be entered."""
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
    try:
        return reverse("admin:connectors_connection_change", args=[connection.pk])
    except NoReverseMatch:
        return ""


def dashboard_rows(user) -> list[ConnectionRow]:
    """Three queries whatever the number of connections: connections, statuses, active queues."""
    from sync.registry import get_connector

    connections = list(selectors.connection_list(user=user).order_by("organization__name", "name"))
    statuses: dict[tuple[int, str], SyncStatus] = {
        (s.connection_id, s.resource): s
        for s in selectors.status_list(user=user).select_related(None).select_related("last_queue")
    }
    active: dict[tuple[int, str], SyncQueue] = {}
    for q in selectors.queue_list(user=user).select_related(None).filter(is_active=True, lane="run"):
        active[(q.connection_id, q.resource)] = q
    rows = []
    for conn in connections:
        row = ConnectionRow(
            connection=conn, label=conn.kind, reconnect_url=reconnect_url(conn) if conn.needs_reauth else ""
        )
        names: list[str] = []
        try:
            connector = get_connector(conn.kind)
            row.label = connector.label
            names = list(connector.resources)
        except Exception as exc:  # an unknown or broken kind must not take the dashboard down
            row.error = f"connector {conn.kind!r} unavailable: {redact(exc)}"
        names += sorted({r for (cid, r) in statuses if cid == conn.pk and r not in names})
        row.resources = [ResourceRow(n, statuses.get((conn.pk, n)), active.get((conn.pk, n))) for n in names]
        rows.append(row)
    return rows


def dashboard(request: HttpRequest, admin_site) -> TemplateResponse:
    context = {
        **admin_site.each_context(request),
        "title": "Sync dashboard",
        "rows": dashboard_rows(request.user),
        "q2_links": _django_q_links(request, admin_site),
        "console_links": _console_links(request, admin_site),
    }
    return TemplateResponse(request, "admin/sync/dashboard.html", context)


# Other apps' admin pages worth a click from the dashboard: (label, app_label, model_name).
CONSOLE_LINKS = (
    ("Loyalty tiers (MuleSoft refresh)", "customers", "loyaltytier"),
    ("MDM exports", "mdm", "exportrun"),
)


def _console_links(request: HttpRequest, admin_site) -> list[tuple[str, str]]:
    """Registered and visible to this user only (each admin's own has_view_permission decides)."""
    admins = {(m._meta.app_label, m._meta.model_name): ma for m, ma in admin_site._registry.items()}
    links = []
    for label, app_label, model_name in CONSOLE_LINKS:
        model_admin = admins.get((app_label, model_name))
        if model_admin is not None and model_admin.has_view_permission(request):
            links.append((label, reverse(f"admin:{app_label}_{model_name}_changelist")))
    return links


# django-q2's own admin pages: (label, model name). Django's model permissions decide who may open them.
DJANGO_Q_LINKS = (
    ("Scheduled tasks", "schedule"),
    ("Queued tasks", "ormq"),
    ("Successful tasks", "success"),
    ("Failed tasks", "failure"),
)


def _django_q_links(request: HttpRequest, admin_site) -> list[tuple[str, str]]:
    """Only the pages this user may open (each ModelAdmin's has_view_permission), never a link to a 403."""
    admins = {m._meta.model_name: ma for m, ma in admin_site._registry.items() if m._meta.app_label == "django_q"}
    links = []
    for label, model_name in DJANGO_Q_LINKS:
        model_admin = admins.get(model_name)
        if model_admin is None or not model_admin.has_view_permission(request):
            continue
        try:
            links.append((label, reverse(f"admin:django_q_{model_name}_changelist")))
        except NoReverseMatch:
            continue
    return links


def dashboard_sync(request: HttpRequest) -> HttpResponse:
    """POST only: start a manual run of one resource of one connection (the "Sync now" button)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    back = redirect("admin:sync_dashboard")
    try:
        connection = selectors.connection_list(user=request.user).get(pk=int(request.POST.get("connection", "")))
    except (ValueError, TypeError, connection_model().DoesNotExist):
        messages.error(request, "No such connection.")
        return back
    resource = request.POST.get("resource", "")
    try:
        result = services.sync_start(connection=connection, resource=resource, origin="manual", actor=request.user)
    except services.SyncServiceError as exc:
        messages.error(request, f"{connection.name} / {resource}: {redact(exc)}")
        return back
    queue = result.queue
    queue.refresh_from_db()
    url = reverse("admin:sync_syncqueue_change", args=[queue.pk])
    verb = {"created": "started", "running": "is already running", "idempotent": "already exists"}[result.reason]
    messages.success(
        request,
        format_html(
            '{} / {}: run <a href="{}">#{}</a> {} ({}).',
            connection.name,
            resource,
            url,
            queue.pk,
            verb,
            queue.get_state_display(),
        ),
    )
    return back


# --- Queue page and actions --------------------------------------------------------------------------------
def queue_detail_context(request: HttpRequest, queue: SyncQueue) -> dict:
    state_filter = request.GET.get("lines_state", "")
    if state_filter not in LineState.values:
        state_filter = ""
    lines_qs = selectors.queue_lines(queue=queue, state=state_filter or None).only(
        "id", "external_id", "action", "state", "attempts", "last_error", "updated_at", "queue_id"
    )
    page = Paginator(lines_qs, LINES_PER_PAGE).get_page(request.GET.get("lines_page"))
    activity = list(
        selectors.queue_activity(queue=queue).select_related(None).order_by("-created_at", "-id")[:TIMELINE_LIMIT]
    )
    progress = queue_progress(queue)
    return {
        "queue": queue,
        "progress": progress,
        "progress_url": reverse("admin:sync_syncqueue_progress", args=[queue.pk]),
        "lines_page": page,
        "lines_state": state_filter,
        "line_states": LineState.choices,
        "activity": activity,
        "can_retry": not progress["running"]
        and queue.state != QueueState.CANCELLED
        and bool(queue.failed_count or queue.fetch_error),
        # Force-done is hidden while lines are being processed (the service refuses it then anyway).
        "can_force_done": queue.state not in (QueueState.PROCESSING, QueueState.CANCELLED)
        and not (queue.state == QueueState.DONE and not queue.is_active),
        "can_cancel": queue.is_active and queue.state not in FINISHED,
        "can_apply_deletions": bool(queue.pending_deletions) and not queue.is_active,
    }


@dataclass(frozen=True)
class QueueAction:
    name: str
    label: str
    verb: str
    run: Callable[..., SyncQueue]
    explanation: str


QUEUE_ACTIONS: dict[str, QueueAction] = {
    "retry": QueueAction(
        "retry",
        "Retry failed lines",
        "retried",
        lambda **kw: services.queue_retry(**kw),
        "Failed lines go back to draft with their attempts reset and the queue runs again.",
    ),
    "force_done": QueueAction(
        "force_done",
        "Force done",
        "forced done",
        lambda **kw: services.queue_force_done(**kw),
        "Every draft and failed line is cancelled so the queue completes; the cursor may advance "
        "past the skipped records.",
    ),
    "cancel": QueueAction(
        "cancel",
        "Cancel",
        "cancelled",
        lambda **kw: services.queue_cancel(**kw),
        "Draft lines are dropped and fetching stops; the cursor stays where it was.",
    ),
    "apply_deletions": QueueAction(
        "apply_deletions",
        "Apply deletions",
        "had their held deletions applied",
        lambda **kw: services.queue_apply_deletions(**kw),
        "The records this full scan did not see upstream, held by the mass-deletion guard, are marked deleted. "
        "Do this only if the upstream really lost them (not after an outage or a connection pointed elsewhere).",
    ),
}


def queue_actions_apply(request: HttpRequest, action: QueueAction, queues) -> tuple[int, int]:
    """Run one service per queue; service errors become admin messages (never a 500)."""
    ok = failed = 0
    for queue in queues:
        try:
            action.run(queue=queue, actor=request.user)
            ok += 1
        except services.SyncServiceError as exc:
            failed += 1
            messages.error(request, f"Queue #{queue.pk}: {redact(exc)}")
    if ok:
        messages.success(request, f"{ok} queue(s) {action.verb}.")
    return ok, failed


def queue_action_confirm(
    request: HttpRequest, admin_site, model_admin, action: QueueAction, queues, *, bulk: bool
) -> TemplateResponse:
    context = {
        **admin_site.each_context(request),
        "title": f"{action.label}: are you sure?",
        "action": action,
        "queues": queues,
        "bulk": bulk,
        "opts": model_admin.model._meta,
        "action_checkbox_name": "_selected_action",
    }
    return TemplateResponse(request, "admin/sync/syncqueue/action_confirm.html", context)


def queue_action_view(request: HttpRequest, admin_site, model_admin, queue_id: int, name: str) -> HttpResponse:
    """GET: a confirmation page. POST: run the action and go back to the queue page."""
    action = QUEUE_ACTIONS.get(name)
    queue = model_admin.get_queryset(request).filter(pk=queue_id).first()
    if action is None or queue is None:
        raise Http404("no such queue or action")
    if request.method == "POST":
        queue_actions_apply(request, action, [queue])
        return redirect("admin:sync_syncqueue_change", queue.pk)
    return queue_action_confirm(request, admin_site, model_admin, action, [queue], bulk=False)
