"""The activity log writer. Every state change goes through here; messages and data are redacted."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache

from core import clock
from core.redaction import redact, redact_data

from .models import ActivityLevel, SyncActivity

log = logging.getLogger("synchub.activity")


def activity_record(
    *,
    event: str,
    message: str = "",
    level: str = ActivityLevel.INFO,
    organization=None,
    connection=None,
    queue=None,
    line=None,
    actor=None,
    data: dict | None = None,
) -> SyncActivity:
    if queue is not None:
        connection = connection or queue.connection
        organization = organization or queue.organization
    if connection is not None and organization is None:
        organization = connection.organization
    label = "system"
    if actor is not None and getattr(actor, "is_authenticated", False):
        label = actor.get_username()
    elif isinstance(actor, str):
        label, actor = actor, None
    row = SyncActivity.objects.create(
        organization=organization,
        connection=connection,
        queue=queue,
        line=line,
        actor=actor if actor is not None and not isinstance(actor, str) and getattr(actor, "pk", None) else None,
        actor_label=label[:150],
        event=event,
        level=level,
        message=redact(message)[:10_000],
        data=redact_data(data or {}),
    )
    log_level = {ActivityLevel.ERROR: logging.ERROR, ActivityLevel.WARNING: logging.WARNING}.get(level, logging.INFO)
    log.log(
        log_level,
        "%s queue=%s connection=%s actor=%s %s",
        event,
        getattr(queue, "pk", None),
        getattr(connection, "pk", None),
        label,
        row.message,
    )
    return row


def activity_record_limited(*, bucket: str, **kwargs) -> SyncActivity | None:
    """``activity_record`` for rows an outsider can cause at will (a webhook with a forged signature needs only
    a guessed connection id): at most ``ACTIVITY_UNTRUSTED_LIMIT`` rows per bucket and
    ``ACTIVITY_UNTRUSTED_WINDOW_SECONDS``; past that nothing is written (one counter update in the shared
    cache) and one warning says so. Returns the row, or None when the limit swallowed it."""
    limit = int(getattr(settings, "ACTIVITY_UNTRUSTED_LIMIT", 10))
    window_seconds = int(getattr(settings, "ACTIVITY_UNTRUSTED_WINDOW_SECONDS", 3600))
    window = int(clock.now().timestamp()) // window_seconds
    counter = f"synchub:activity:untrusted:{bucket}:{window}"
    cache.add(counter, 0, timeout=window_seconds * 2)
    try:
        seen = cache.incr(counter)
    except ValueError:  # evicted between add and incr
        seen = 1
    if seen > limit:
        if seen == limit + 1:
            log.warning("%s: %s rows in this window; further ones are not recorded", bucket, limit)
        return None
    return activity_record(**kwargs)
