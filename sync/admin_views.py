"""Admin-only views: the sync dashboard, the queue page, queue actions with confirmation, progress JSON.

Thin on purpose: reads go through sync.selectors (organization-scoped), writes through sync.services.
Every view here is wrapped by ``admin_site.admin_view`` (staff login + CSRF) in sync/admin.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from core import clock
from core.redaction import redact

from . import recovery, selectors, services
from .dashboard import DashboardQuery, dashboard_page, dashboard_version
from .models import LineState, QueueState, SyncQueue
from .progress import format_duration as _format_seconds
from .progress import run_progress
from .registry import KINDS, connection_model

FINISHED = {QueueState.DONE, QueueState.PARTIAL, QueueState.FAILED, QueueState.CANCELLED}
LINES_PER_PAGE = 50
TIMELINE_LIMIT = 200


# --- Progress ------------------------------------------------------------------------------------------
def queue_progress(queue: SyncQueue) -> dict:
    """What a progress bar shows: sync.progress.run_progress (shared with the API and the CLI), JSON-ready."""
    p = run_progress(queue)
    p = {k: v for k, v in p.items() if k not in ("started_at", "estimated_finish_at")}
    p["duration"] = p["active"]  # kept for old pollers: "duration" is active time now, not wall time
    return p


def queue_duration(queue: SyncQueue) -> dt.timedelta | None:
    """Wall time since the run started (includes waiting); see run_progress for active vs waiting."""
    if queue.started_at is None:
        return None
    return (queue.finished_at or clock.now()) - queue.started_at


def format_duration(delta: dt.timedelta | None) -> str:
    return _format_seconds(None if delta is None else delta.total_seconds())


def progress_bar_html(queue: SyncQueue, *, live: bool = False, name: str = "") -> str:
    """The bar as HTML, for changelist and dashboard cells. ``live`` makes the page's script poll it."""
    p = queue_progress(queue)
    url = reverse("admin:sync_syncqueue_progress", args=[queue.pk]) if live and p["running"] else ""
    return format_html(
        '<div class="sh-progress-wrap" data-progress-url="{}" data-queue="{}" data-state="{}">'
        '<div class="sh-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{}" '
        'aria-valuetext="{}" aria-label="{}" title="{} done / {} failed / {} cancelled / {} total">'
        '<div class="sh-bar sh-done" style="width:{}%"></div><div class="sh-bar sh-failed" style="width:{}%"></div>'
        '<div class="sh-bar sh-cancelled" style="width:{}%"></div></div>'
        '<span class="sh-progress-label" data-testid="progress-label" aria-live="polite">{}</span></div>',
        url,
        queue.pk,
        p["state"],
        p["percent"],
        p["label"],
        f"Progress of run #{queue.pk}" + (f": {name}" if name else ""),
        p["done"],
        p["failed"],
        p["cancelled"],
        p["total"],
        p["done_pct"],
        p["failed_pct"],
        p["cancelled_pct"],
        p["label"],
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
def dashboard(request: HttpRequest, admin_site) -> TemplateResponse:
    query = DashboardQuery.from_params(request.GET)
    page, rows, version = dashboard_page(request.user, query)
    params = {k: v for k, v in (("q", query.q), ("kind", query.kind), ("tier", query.tier), ("show", query.show)) if v}
    context = {
        **admin_site.each_context(request),
        "title": "Sync dashboard",
        "rows": rows,
        "page_obj": page,
        "query": query,
        "filter_params": urlencode(params),
        "kinds": sorted(KINDS),
        "filters": [("", "All"), ("needs_action", "Needs action"), ("failing", "Failing"), ("stale", "Stale")],
        "watch_version": version,
        "state_url": reverse("admin:sync_dashboard_state")
        + "?"
        + urlencode({"ids": ",".join(str(r.connection.pk) for r in rows)}),
        "q2_links": _django_q_links(request, admin_site),
        "console_links": _console_links(request, admin_site),
    }
    return TemplateResponse(request, "admin/sync/dashboard.html", context)


def dashboard_state(request: HttpRequest) -> JsonResponse:
    """What the dashboard polls: a fingerprint of its page's connections; it reloads its rows on a change."""
    ids = []
    for part in request.GET.get("ids", "").split(",")[:500]:
        if part.isdigit():
            ids.append(int(part))
    response = JsonResponse({"version": dashboard_version(request.user, ids)})
    response["Cache-Control"] = "no-store"
    return response


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
        "advice": recovery.queue_advice(queue),
        "connection_url": recovery.connection_admin_url(queue.connection),
        "can_retry": can_retry(queue) is None,
        # Force-done is hidden while lines are being processed (the service refuses it then anyway).
        "can_force_done": can_force_done(queue) is None,
        "can_cancel": can_cancel(queue) is None,
        "can_apply_deletions": can_apply_deletions(queue) is None,
    }


# Why an action does not apply to a queue (None: it applies). The same rules the services enforce, asked
# before acting so that a bulk action skips what it cannot act on and says why.
def can_retry(queue: SyncQueue) -> str | None:
    if queue.is_active and queue.state not in FINISHED:
        return "still running"
    if queue.state == QueueState.CANCELLED:
        return "cancelled (start a new run instead)"
    if not (queue.failed_count or queue.fetch_error):
        return "nothing failed"
    return None


def can_force_done(queue: SyncQueue) -> str | None:
    if queue.state == QueueState.PROCESSING:
        return "lines are being processed"
    if queue.state == QueueState.CANCELLED:
        return "cancelled"
    if queue.state == QueueState.DONE and not queue.is_active:
        return "already done"
    return None


def can_apply_deletions(queue: SyncQueue) -> str | None:
    if not queue.pending_deletions:
        return "no deletions held"
    if queue.is_active:
        return "still running"
    return None


def can_cancel(queue: SyncQueue) -> str | None:
    if not queue.is_active or queue.state in FINISHED:
        return "already finished"
    return None


@dataclass(frozen=True)
class QueueAction:
    name: str
    label: str  # the button that does it
    verb: str
    run: Callable[..., SyncQueue]
    explanation: str
    question: str  # the confirmation's title: a question only "yes, do it" or "no" can answer
    keep: str  # the button that does nothing
    applies: Callable[[SyncQueue], str | None]


QUEUE_ACTIONS: dict[str, QueueAction] = {
    "retry": QueueAction(
        "retry",
        "Retry failed lines",
        "retried",
        lambda **kw: services.queue_retry(**kw),
        "Failed lines go back to draft with their attempts reset and the queue runs again. A run whose fetch "
        "failed fetches again from where it stopped.",
        "Retry the failed lines of {what}?",
        "Don't retry",
        lambda q: can_retry(q),
    ),
    "force_done": QueueAction(
        "force_done",
        "Force done",
        "forced done",
        lambda **kw: services.queue_force_done(**kw),
        "Every draft and failed line is cancelled so the queue completes; the cursor may advance "
        "past the skipped records.",
        "Skip the remaining lines and mark {what} done?",
        "Keep it as it is",
        lambda q: can_force_done(q),
    ),
    "cancel": QueueAction(
        "cancel",
        "Cancel run",
        "cancelled",
        lambda **kw: services.queue_cancel(**kw),
        "Draft lines are dropped and fetching stops; the cursor stays where it was.",
        "Cancel {what}?",
        "Keep running",
        lambda q: can_cancel(q),
    ),
    "apply_deletions": QueueAction(
        "apply_deletions",
        "Apply deletions",
        "had their held deletions applied",
        lambda **kw: services.queue_apply_deletions(**kw),
        "The records this full scan did not see upstream, held by the mass-deletion guard, are marked deleted. "
        "Do this only if the upstream really lost them (not after an outage or a connection pointed elsewhere).",
        "Apply the deletions the guard held back for {what}?",
        "Keep them",
        lambda q: can_apply_deletions(q),
    ),
}


def queue_actions_apply(request: HttpRequest, action: QueueAction, queues) -> tuple[int, int]:
    """Run one service per queue that the action applies to; the others are skipped and named. Service
    errors become admin messages (never a 500)."""
    ok = failed = 0
    skipped = []
    for queue in queues:
        reason = action.applies(queue)
        if reason is not None:
            skipped.append(f"#{queue.pk} ({reason})")
            continue
        try:
            action.run(queue=queue, actor=request.user)
            ok += 1
        except services.SyncServiceError as exc:
            failed += 1
            messages.error(request, f"Queue #{queue.pk}: {redact(exc)}")
    if ok:
        messages.success(request, f"{ok} queue(s) {action.verb}.")
    if skipped:
        messages.warning(request, f"Skipped {len(skipped)} queue(s) this does not apply to: {', '.join(skipped)}.")
    return ok, failed


def queue_action_confirm(
    request: HttpRequest, admin_site, model_admin, action: QueueAction, queues, *, bulk: bool
) -> TemplateResponse:
    applicable, skipped = [], []
    for q in queues:
        reason = action.applies(q)
        (skipped.append((q, reason)) if reason else applicable.append(q))
    what = f"run #{queues[0].pk}" if len(queues) == 1 else f"these {len(applicable)} runs"
    context = {
        **admin_site.each_context(request),
        "title": action.question.format(what=what),
        "action": action,
        "queues": applicable,
        "skipped": skipped,
        "bulk": bulk,
        "opts": model_admin.model._meta,
        "action_checkbox_name": "_selected_action",
    }
    return TemplateResponse(request, "admin/sync/syncqueue/action_confirm.html", context)


def queue_action_view(request: HttpRequest, admin_site, model_admin, queue_id: int, name: str) -> HttpResponse:
    """GET: a confirmation page. POST: run the action and go back to the queue page."""
    action = QUEUE_ACTIONS.get(name)
    queue = model_admin.get_queryset(request).select_related("connection").filter(pk=queue_id).first()
    if action is None or queue is None:
        raise Http404("no such queue or action")
    if request.method == "POST":
        queue_actions_apply(request, action, [queue])
        return redirect("admin:sync_syncqueue_change", queue.pk)
    return queue_action_confirm(request, admin_site, model_admin, action, [queue], bulk=False)


def reconnect_url(connection) -> str:
    """See sync.recovery.reconnect_url (kept here for callers that import it from this module)."""
    return recovery.reconnect_url(connection)
