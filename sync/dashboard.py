"""The sync dashboard's reads (a selector module): one page of connections with, per resource, a status that
agrees with the runs, the last run's count, the rows stored, and the next scheduled run.

Bounded whatever the fleet (issue 21): filters run in the database (EXISTS subqueries), the page holds
``PER_PAGE`` connections, and everything about them is read with a fixed number of queries keyed by the page's
connection ids (statuses, active queues, run schedules, django-q2 schedules, one COUNT ... GROUP BY per domain
model shown). Nothing scans other rows per connection.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Count, Exists, Max, OuterRef, Q
from django_q.models import Schedule

from core import clock
from core.redaction import redact

from . import selectors
from .models import QueueState, RunSchedule, ScheduleState, StatusState, SyncQueue, SyncStatus
from .registry import KINDS, UnknownKind, get_connector

PER_PAGE = 25
FILTERS = ("needs_action", "failing", "stale")


def stale_after() -> dt.timedelta:
    return dt.timedelta(hours=float(getattr(settings, "SYNC_DASHBOARD_STALE_HOURS", 24)))


@dataclass(frozen=True)
class DashboardQuery:
    q: str = ""
    kind: str = ""
    tier: str = ""
    show: str = ""  # one of FILTERS, or ""
    page: str = "1"

    @classmethod
    def from_params(cls, params) -> DashboardQuery:
        show = params.get("show", "")
        return cls(
            q=params.get("q", "").strip()[:100],
            kind=params.get("kind", "") if params.get("kind", "") in KINDS else "",
            tier=params.get("tier", "").strip()[:16],
            show=show if show in FILTERS else "",
            page=params.get("page", "1"),
        )


@dataclass
class ResourceRow:
    name: str
    status: SyncStatus | None
    active_queue: SyncQueue | None
    state: str  # css/state code: running, queued, success, failed, cancelled, skipped, idle, never
    state_label: str
    total_rows: int | None = None
    next_run: dt.datetime | None = None
    next_run_note: str = ""

    @property
    def queue(self) -> SyncQueue | None:
        """The running queue, else the last one (so a finished run shows its full bar)."""
        return self.active_queue or (self.status.last_queue if self.status else None)

    @property
    def last_run_count(self) -> int | None:
        q = self.status.last_queue if self.status else None
        return q.done_count if q is not None else (self.status.records_synced if self.status else None)


@dataclass
class ConnectionRow:
    connection: object
    label: str
    reconnect_url: str = ""
    tier: str = ""
    resources: list[ResourceRow] = field(default_factory=list)
    error: str = ""


def connections_filtered(user, query: DashboardQuery):
    qs = selectors.connection_list(user=user)
    if query.q:
        qs = qs.filter(Q(name__icontains=query.q) | Q(external_account_id=query.q) | Q(base_url__icontains=query.q))
    if query.kind:
        qs = qs.filter(kind=query.kind)
    if query.tier:
        qs = qs.filter(Exists(RunSchedule.objects.filter(connection=OuterRef("pk"), tier=query.tier)))
    if query.show == "needs_action":
        qs = qs.filter(
            Q(needs_reauth=True)
            | Exists(SyncQueue.objects.filter(connection=OuterRef("pk"), action_required=True, is_active=False))
        )
    elif query.show == "failing":
        qs = qs.filter(
            Q(consecutive_failures__gt=0)
            | Q(health__in=["degraded", "down"])
            | Exists(SyncStatus.objects.filter(connection=OuterRef("pk"), state=StatusState.FAILED))
        )
    elif query.show == "stale":
        cutoff = clock.now() - stale_after()
        qs = qs.filter(
            is_active=True,
            needs_reauth=False,
        ).exclude(Exists(SyncStatus.objects.filter(connection=OuterRef("pk"), last_success_at__gte=cutoff)))
    return qs.order_by("organization__name", "name", "pk")


def resource_state(status: SyncStatus | None, active: SyncQueue | None, sched: RunSchedule | None) -> tuple[str, str]:
    """One state per resource that agrees with the runs: an active run wins over the last status."""
    if active is not None:
        if active.state == QueueState.DRAFT:
            return "queued", "Queued"
        return "running", "Running"
    if sched is not None and sched.queued_at is not None:
        return "queued", "Queued"
    if status is None:
        return "never", "Never synced"
    last = status.last_queue
    if last is not None and last.state == QueueState.CANCELLED and status.state == StatusState.IDLE:
        return "cancelled", "Cancelled"
    if last is not None and last.state == QueueState.PARTIAL:
        return "partial", "Partial"
    if status.state == StatusState.SYNCING:  # status says syncing but no run is active: it stopped
        return "idle", "Stopped"
    return status.state, status.get_state_display()


def _next_runs(conns, schedules: dict) -> dict:
    """Next run per (connection id, unit) from django-q2 (the real timer), else the policy's next_sync_at."""
    names = [s.schedule_name for s in schedules.values() if s.schedule_name]
    q2 = (
        {s.name: s for s in Schedule.objects.filter(name__in=names).only("name", "next_run", "repeats")}
        if names
        else {}
    )
    out = {}
    for key, sched in schedules.items():
        if sched.state in (ScheduleState.PAUSED, ScheduleState.NEEDS_REAUTH, ScheduleState.DISCONNECTED):
            out[key] = (None, sched.get_state_display().lower())
            continue
        row = q2.get(sched.schedule_name)
        if row is not None and row.repeats == 0:
            out[key] = (None, "paused")
        elif row is not None and row.next_run:
            out[key] = (row.next_run, "")
        else:
            out[key] = (sched.next_sync_at, "" if sched.next_sync_at else "not scheduled")
    return out


def _row_totals(kind_resources: dict[str, dict[str, str]], ids: list[int]) -> dict[tuple[int, str], int]:
    """Rows stored per (connection, resource): one COUNT ... GROUP BY connection per domain model shown."""
    by_model: dict[str, list[str]] = {}
    for resources in kind_resources.values():
        for name, model in resources.items():
            by_model.setdefault(model, [])
            if name not in by_model[model]:
                by_model[model].append(name)
    totals: dict[tuple[int, str], int] = {}
    for label, names in by_model.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        if not any(f.name == "connection" for f in model._meta.get_fields()):
            continue
        manager = getattr(model, "all_objects", model._default_manager)
        for cid in ids:  # a counted model with no row for a connection: 0, not "unknown"
            for name in names:
                totals[(cid, name)] = 0
        for row in manager.filter(connection_id__in=ids).values("connection_id").annotate(n=Count("pk")):
            for name in names:
                totals[(row["connection_id"], name)] = row["n"]
    return totals


def dashboard_page(user, query: DashboardQuery, *, per_page: int = PER_PAGE):
    """(page, rows, version): the page object (for the paginator links), its ConnectionRows, and the
    fingerprint (dashboard_version) of what they show, taken before the runs and statuses are read: the
    page starts polling from it, so a change made while the page was on its way to the browser is seen by
    the first poll (an extra refresh at worst, never a miss)."""
    from .recovery import reconnect_url

    paginator = Paginator(connections_filtered(user, query), per_page)
    page = paginator.get_page(query.page)
    conns = list(page.object_list)
    ids = [c.pk for c in conns]
    version = dashboard_version(user, ids, loaded=conns)
    statuses = (
        {
            (s.connection_id, s.resource): s
            for s in SyncStatus.objects.filter(connection_id__in=ids).select_related("last_queue")
        }
        if ids
        else {}
    )
    active = (
        {
            (q.connection_id, q.resource): q
            for q in SyncQueue.objects.filter(connection_id__in=ids, is_active=True, lane="run")
        }
        if ids
        else {}
    )
    schedules = (
        {(s.connection_id, s.resource): s for s in RunSchedule.objects.filter(connection_id__in=ids)} if ids else {}
    )
    next_runs = _next_runs(conns, schedules) if schedules else {}

    kind_resources: dict[str, dict[str, str]] = {}
    rows = []
    for conn in conns:
        row = ConnectionRow(connection=conn, label=conn.kind)
        if conn.needs_reauth:
            row.reconnect_url = reconnect_url(conn)
        whole = schedules.get((conn.pk, ""))
        row.tier = whole.tier if whole is not None else ""
        names: list[str] = []
        try:
            connector = get_connector(conn.kind)
            row.label = connector.label
            names = list(connector.resources)
            kind_resources.setdefault(conn.kind, {n: r.model for n, r in connector.resources.items()})
        except (UnknownKind, ImportError, Exception) as exc:  # a broken kind must not take the dashboard down
            row.error = f"connector {conn.kind!r} unavailable: {redact(exc)}"
        rows.append((row, names))
    # Resources with a status but no longer declared (renamed): from the statuses of this page only.
    extra: dict[int, list[str]] = {}
    for cid, name in statuses:
        extra.setdefault(cid, []).append(name)
    totals = _row_totals(kind_resources, ids) if ids else {}
    out = []
    for row, names in rows:
        cid = row.connection.pk
        names = names + sorted(n for n in extra.get(cid, []) if n not in names)
        for name in names:
            status = statuses.get((cid, name))
            act = active.get((cid, name))
            sched = schedules.get((cid, name)) or schedules.get((cid, ""))
            state, label = resource_state(status, act, sched)
            nxt, note = next_runs.get((cid, name)) or next_runs.get((cid, "")) or (None, "no schedule")
            row.resources.append(
                ResourceRow(
                    name=name,
                    status=status,
                    active_queue=act,
                    state=state,
                    state_label=label,
                    total_rows=totals.get((cid, name)),
                    next_run=nxt,
                    next_run_note=note,
                )
            )
        out.append(row)
    return page, out, version


def dashboard_version(user, connection_ids: list[int], *, loaded: list | None = None) -> str:
    """A cheap fingerprint of what the page shows (two aggregate queries): the page reloads its live regions
    only when it changes. ``loaded``: the page's connections as it read them (their own ``updated_at``, not
    a newer one read now, so a connection changed after the page read it still changes the fingerprint)."""
    ids = [i for i in connection_ids if isinstance(i, int)][:500]
    if loaded is not None:
        allowed = [c.pk for c in loaded if c.pk in set(ids)]
        conn_max = max((c.updated_at for c in loaded if c.updated_at is not None), default=None)
    else:
        allowed = list(selectors.connection_list(user=user).filter(pk__in=ids).values_list("pk", flat=True))
    if not allowed:
        return "empty"
    q = SyncQueue.objects.filter(connection_id__in=allowed).aggregate(
        m=Max("updated_at"), n=Count("pk", filter=Q(is_active=True))
    )
    if loaded is None:
        conn_max = selectors.connection_list(user=user).filter(pk__in=allowed).aggregate(m=Max("updated_at"))["m"]
    s = SyncStatus.objects.filter(connection_id__in=allowed).aggregate(m=Max("updated_at"))
    return f"{q['m']}|{q['n']}|{conn_max}|{s['m']}"
