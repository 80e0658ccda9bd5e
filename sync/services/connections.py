"""A connection's health as runs see it: needs re-authorisation, consecutive failures."""

from __future__ import annotations

from django.db.models import F

from core import clock
from core.redaction import redact

from ..activity import activity_record
from ..models import ActivityLevel
from ..registry import connection_model


def connection_mark_needs_reauth(*, connection, reason: str, actor=None) -> None:
    Connection = connection_model()
    Connection.objects.filter(pk=connection.pk).update(
        needs_reauth=True, last_error=redact(reason)[:2000], health="down"
    )
    connection.needs_reauth = True
    activity_record(
        event="connection.needs_reauth",
        connection=connection,
        actor=actor,
        level=ActivityLevel.ERROR,
        message=f"{connection.name}: re-authorisation needed: {reason}",
    )


def connection_record_result(*, connection, ok: bool, error: str = "") -> None:
    Connection = connection_model()
    now = clock.now()
    if ok:
        Connection.objects.filter(pk=connection.pk).update(
            consecutive_failures=0, health="ok", last_error="", last_checked_at=now
        )
    else:
        Connection.objects.filter(pk=connection.pk).update(
            consecutive_failures=F("consecutive_failures") + 1,
            last_error=redact(error)[:2000],
            last_checked_at=now,
        )
        # "down" (needs re-authorisation) is worse than "degraded": a failed run must not soften it.
        Connection.objects.filter(pk=connection.pk, needs_reauth=False).update(health="degraded")
