"""django-q2 entry points. Ids in; never raises (a failed refresh is an outcome, not a task failure)."""

from __future__ import annotations

import logging

from sync.models import Organization

from . import services

log = logging.getLogger("synchub.mulesoft")


def refresh_loyalty_tiers(organization_id: int, origin: str = "customer_list") -> str | None:
    try:
        return str(services.loyalty_refresh(organization_id, origin=origin).outcome)
    except Organization.DoesNotExist:
        log.warning("loyalty refresh: organization %s is gone", organization_id)
    except Exception:
        log.exception("loyalty refresh of organization %s crashed", organization_id)
    return None
