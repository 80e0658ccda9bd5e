"""The one place a run's progress is computed: the admin's bars, the API's ``progress`` and the CLI's
progress line all read ``run_progress`` (a selector: no writes, no queries beyond the queue row given).

Truth rules (issue 18):
- ``percent`` is the share of the run's records that ended **done**; failed and cancelled records are their
  own segments, never counted as progress. A run that failed on fetch with 0 records is 0 %, failed.
- A cancelled run counts what it never fetched (announced by the upstream but not reached) as cancelled.
- A running run shows at most 99 %.
- ``active_seconds`` is time a worker spent on the run; ``waiting_seconds`` the rest of the wall time
  since it was created (waiting for a worker, a retry, a person).
"""

from __future__ import annotations

import datetime as dt

from core import clock
from core.redaction import redact

# Queue states as plain strings (sync.models.QueueState's values): the model's progress_percent reads this
# module, so it imports no model (no import circle).
DONE, PARTIAL, FAILED, CANCELLED, PROCESSING = "done", "partial", "failed", "cancelled", "processing"
FINISHED_STATES = frozenset({DONE, PARTIAL, FAILED, CANCELLED})


def run_progress(queue, now: dt.datetime | None = None) -> dict:
    now = now or clock.now()
    done, failed, cancelled = queue.done_count, queue.failed_count, queue.cancelled_count
    finished = done + failed + cancelled
    total = max(queue.total_count, queue.expected_total or 0)
    running = bool(queue.is_active) and queue.state not in FINISHED_STATES
    unfetched = max(total - queue.total_count, 0)
    if not running and queue.state == CANCELLED:
        cancelled_shown = cancelled + unfetched + queue.draft_count
    else:
        cancelled_shown = cancelled
    fetch_failed = bool(queue.fetch_error)

    if total:
        percent = int(100 * done / total)
    else:
        percent = 100 if queue.state == DONE and not running else 0
    if running:
        percent = min(percent, 99)

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    done_pct = pct(done) if total else (100.0 if percent == 100 else 0.0)
    failed_pct = pct(failed)
    if fetch_failed and not running and not total:
        failed_pct = 100.0  # nothing fetched and the fetch failed: the whole bar is the failure, not green
    active = queue.active_seconds or 0.0
    if queue.active_since is not None and running:
        active += max((now - queue.active_since).total_seconds(), 0.0)
    end = queue.finished_at if (queue.finished_at and not running) else now
    wall = max((end - queue.created_at).total_seconds(), 0.0) if queue.created_at else 0.0
    active = min(active, wall) if wall else active
    elapsed = (end - queue.started_at).total_seconds() if queue.started_at else None
    # Throughput per active second; a run without recorded sessions (older rows) falls back to wall time.
    basis = active if active > 0 else (elapsed or 0.0)
    rate = finished / basis if basis > 0 and finished else None
    eta = None
    if running and rate and total > finished:
        eta = now + dt.timedelta(seconds=(total - finished) / rate)

    return {
        "id": queue.pk,
        "state": queue.state,
        "running": running,
        "action_required": queue.action_required,
        "fetch_done": queue.fetch_done,
        "fetch_failed": fetch_failed,
        "pages_fetched": queue.pages_fetched,
        "total": total,
        "lines": queue.total_count,
        "expected_total": queue.expected_total,
        "finished": finished,
        "draft": queue.draft_count,
        "processing": queue.processing_count,
        "done": done,
        "failed": failed,
        "cancelled": cancelled_shown,
        "percent": percent,
        "done_pct": done_pct,
        "failed_pct": failed_pct,
        "cancelled_pct": pct(cancelled_shown),
        "label": progress_label(queue.state, running, percent, failed, cancelled_shown, fetch_failed),
        "started_at": queue.started_at,
        "elapsed_seconds": elapsed,
        "active_seconds": round(active, 3),
        "waiting_seconds": round(max(wall - active, 0.0), 3),
        "active": format_duration(active if queue.started_at else None),
        "waiting": format_duration(max(wall - active, 0.0)),
        "lines_per_second": round(rate, 3) if rate else None,
        "estimated_finish_at": eta,
        "last_error": redact(queue.last_error or queue.fetch_error or "")[:500],
    }


def progress_label(state: str, running: bool, percent: int, failed: int, cancelled: int, fetch_failed: bool) -> str:
    """Short text beside the bar; says failed/cancelled in words so colour is never the only signal."""
    parts = [f"{percent}%"]
    if running:
        parts.append("running" if state == PROCESSING else "queued")
    elif state == FAILED and fetch_failed:
        parts.append("failed on fetch")
    elif state in (FAILED, PARTIAL, CANCELLED):
        parts.append(state)
    if failed:
        parts.append(f"{failed} failed")
    if cancelled:
        parts.append(f"{cancelled} cancelled")
    return " · ".join(parts)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def progress_line(queue) -> str:
    """One human line (the CLI's progress output and listings), from the same numbers as the bars."""
    p = run_progress(queue)
    fetch = (
        "fetch failed"
        if p["fetch_failed"]
        else ("fetch done" if p["fetch_done"] else f"fetching (page {p['pages_fetched']})")
    )
    return (
        f"queue #{queue.pk} {queue.resource} [{queue.state}] {p['done']}/{p['total']} done, "
        f"{p['failed']} failed, {p['cancelled']} cancelled, {p['draft']} waiting, {fetch}, {p['percent']}%"
        # durations only once finished: while running, the line changes only when the counts do
        + ("" if p["running"] else f" (active {p['active']}, waiting {p['waiting']})")
        + (" - ACTION REQUIRED" if queue.action_required else "")
    )
