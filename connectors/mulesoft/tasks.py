"""django-q2 entry points. Ids in; never raises (a failed refresh is an outcome, not a task failure).

Refreshes requested by the customer list, the admin or the API are engine runs (``sync.tasks.run_queue``);
this task remains for schedules that still name it."""

from __future__ import annotations

import logging

from sync.models import Organization

from . import services

log = logging.getLogger("synchub.mulesoft")


def refresh_loyalty_tiers(organization_id: int, origin: str = "schedule") -> str | None:
    try:
        return str(services.loyalty_refresh(organization_id, origin=origin).outcome)
    except Organization.DoesNotExist:
        log.warning("loyalty refresh: organization %s is gone", organization_id)
    except Exception:
        log.exception("loyalty refresh of organization %s crashed", organization_id)
    return None


def push_deliveries_purge() -> int:
    """Daily housekeeping: forget pushes older than the dedupe window."""
    from .push import push_deliveries_purge as purge

    try:
        return purge()
    except Exception:
        log.exception("mulesoft push deliveries purge failed")
        return 0
