"""django-q2 entry points for alerting: ids in, never raises."""

from __future__ import annotations

import logging

log = logging.getLogger("synchub.alerts")


def evaluate() -> dict | None:
    """The ``synchub:alerts`` system schedule: streaks and staleness for the whole fleet."""
    from . import services

    try:
        return services.evaluate()
    except Exception:
        log.exception("alerts evaluation failed")
        return None


def notify(incident_id: int, event: str) -> str:
    from . import services

    try:
        return services.incident_notify(incident_id, event)
    except Exception:
        log.exception("alert notification for incident %s failed", incident_id)
        return "crashed"
