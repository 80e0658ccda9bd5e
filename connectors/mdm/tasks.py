"""django-q2 entry points. Ids in; nothing raises out (a failed export is a recorded run, and the next
scheduled run proceeds normally)."""

from __future__ import annotations

import logging

log = logging.getLogger("synchub.mdm")


def mdm_export_scheduled() -> int | None:
    from .services import mdm_export_run

    try:
        return mdm_export_run(origin="schedule").pk
    except Exception:
        log.exception("scheduled MDM export crashed")
        return None


def mdm_export_task(run_id: int) -> int | None:
    from .models import ExportRun
    from .services import mdm_export_run

    try:
        run = ExportRun.objects.get(pk=run_id)
        if run.status != "queued":  # a re-delivered task: the run already happened
            return run.pk
        return mdm_export_run(run=run).pk
    except Exception:
        log.exception("MDM export task for run %s crashed", run_id)
        return None


def preload_items_cache(**_signal_kwargs) -> None:
    """Load the ineligible items into this worker's memory (django-q2 post_spawn, when configured)."""
    from .readcache import ITEMS_CACHE, ItemsUnavailable

    try:
        ITEMS_CACHE.get()
    except ItemsUnavailable as exc:
        log.warning("ineligible items not preloaded: %s", exc)
    except Exception:
        log.exception("ineligible items preload crashed")
