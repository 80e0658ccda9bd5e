"""Customer-side writes. The loyalty refresh itself lives with the MuleSoft connector."""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar

from django.core.signals import request_finished, request_started
from django.db import close_old_connections

# Organizations whose loyalty refresh the current request asked for. A ContextVar is per thread under WSGI
# and follows the request through asgiref's sync_to_async under ASGI; request_started empties it, so a
# value can never leak from one request into the next one served by the same thread.
_pending_refresh: ContextVar[tuple[int, ...]] = ContextVar("synchub_pending_loyalty_refresh", default=())


def loyalty_refresh_after_response(organization_ids: Iterable[int]) -> None:
    """Enqueue the loyalty-tier refresh for these organizations once the response has been sent.

    Django sends ``request_finished`` from ``response.close()``, which the WSGI server calls after the last
    byte went out (the test client emulates this). So the request never waits for the throttle check or
    the enqueue INSERT, let alone for MuleSoft, which only the worker talks to."""
    ids = tuple(organization_ids)
    if ids:
        _pending_refresh.set(_pending_refresh.get() + ids)


def _forget_pending_refresh(**kwargs) -> None:
    _pending_refresh.set(())


def _enqueue_pending_refresh(**kwargs) -> None:
    ids = _pending_refresh.get()
    if not ids:
        return
    _pending_refresh.set(())
    from connectors.mulesoft.services import loyalty_refresh_request_safe

    loyalty_refresh_request_safe(list(dict.fromkeys(ids)), origin="customer_list")


def connect_signals() -> None:
    request_started.connect(_forget_pending_refresh, dispatch_uid="customers.loyalty_refresh.started")
    # Run before Django's own close_old_connections receiver (connected when django.db loads), so the
    # enqueue uses the request's database connection and Django then closes it as usual. Connected after
    # it, the enqueue would open a second connection per request that idles until the thread's next request.
    # (Django's test client disconnects and reconnects close_old_connections the same way.)
    reorder = request_finished.disconnect(close_old_connections)
    request_finished.connect(_enqueue_pending_refresh, dispatch_uid="customers.loyalty_refresh.finished")
    if reorder:
        request_finished.connect(close_old_connections)
