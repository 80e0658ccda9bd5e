"""Customer-side writes. The loyalty refresh itself lives with the MuleSoft connector."""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar

from django.core.signals import request_finished, request_started
from django.db import connection

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
    # Django's own request_finished receiver (close_old_connections) ran before this one, so the query
    # above may have reopened the connection: apply the same end-of-request rule again. Not inside an
    # atomic block (the test suite's wrapping transaction), where closing would break the transaction.
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def connect_signals() -> None:
    request_started.connect(_forget_pending_refresh, dispatch_uid="customers.loyalty_refresh.started")
    request_finished.connect(_enqueue_pending_refresh, dispatch_uid="customers.loyalty_refresh.finished")
