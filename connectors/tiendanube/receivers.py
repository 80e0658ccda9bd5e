"""Signal receivers, connected in TiendanubeConfig.ready()."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def on_user_logged_in(sender, request, user, **kwargs) -> None:
    """Stores sync when their owner logs in (admin or API session). Enqueue only; never break a login."""
    if not getattr(user, "is_staff", False):
        return
    from .stores import login_sync

    try:
        login_sync(user=user)
    except Exception:
        log.exception("tiendanube login sync for user %s failed", getattr(user, "pk", None))
