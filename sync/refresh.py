"""Runs a view asks for as a side effect ("the customer list was opened: refresh the loyalty tiers"),
started only after the response has been sent, throttled by the resource's RunPolicy.

A domain app says WHAT it wants refreshed (its model, for some organizations); the registry finds the
resources that write that model, so the domain app never names or imports a connector. ``request_after_response`` notes the wish for this request (a ContextVar, emptied on
``request_started``); a receiver of Django's ``request_finished`` signal (sent from ``response.close()``
once the WSGI server has written the body) starts the runs. Starting is a throttle check and, at most once
per window, a queue INSERT and one django-q2 OrmQ INSERT (``sync=False``: never inline, even under Q_SYNC),
so the upstream is only ever called by a worker and the request is never slowed."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar

from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django_q.tasks import async_task

from .models import Lane, Origin, SyncQueue
from .registry import connection_model

log = logging.getLogger(__name__)

# (model label, organization id) wished for by the current request.
_pending: ContextVar[tuple[tuple[str, int], ...]] = ContextVar("synchub_pending_runs", default=())


def resources_writing(model: str) -> list[tuple[str, str]]:
    """(kind, resource) of every registered resource whose domain model is ``model`` ("app.Model")."""
    from .registry import KINDS, get_connector

    found = []
    for kind in KINDS:
        try:
            connector = get_connector(kind)
        except Exception:  # one broken connector must not stop the others
            log.exception("connector %s cannot be loaded", kind)
            continue
        found += [(kind, name) for name, res in connector.resources.items() if res.model.lower() == model.lower()]
    return found


def sync_request(*, kind: str, resource: str, organization_ids: Iterable[int], origin: str = Origin.LOGIN) -> list[int]:
    """Start a throttled run of ``kind``/``resource`` for every active connection of those organizations
    and hand it to a worker. Returns the ids of the queues it created (a throttled or already running
    connection adds none)."""
    from .services import SyncServiceError, sync_start

    created = []
    connections = (
        connection_model()
        .objects.filter(kind=kind, organization_id__in=list(organization_ids), is_active=True, needs_reauth=False)
        .order_by("id")
    )
    active = set(
        SyncQueue.objects.filter(
            connection__in=connections, resource=resource, lane=Lane.RUN, is_active=True
        ).values_list("connection_id", flat=True)
    )
    for connection in connections:
        if connection.pk in active:
            continue  # a run is already under way (perhaps hanging upstream): one cheap query, no INSERT tried
        try:
            result = sync_start(connection=connection, resource=resource, origin=origin, enqueue=False)
        except SyncServiceError as exc:
            log.info("requested %s/%s run of connection %s not started: %s", kind, resource, connection.pk, exc)
            continue
        if result.created:
            queue_id = result.queue.pk
            async_task("sync.tasks.run_queue", queue_id, sync=False, task_name=f"queue-{queue_id}", group="sync-queues")
            created.append(queue_id)
    return created


def request_after_response(*, model: str, organization_ids: Iterable[int]) -> None:
    """Note that ``model``'s rows of these organizations should be refreshed once this request's response
    has been sent (see the module docstring)."""
    wanted = tuple((model, int(org_id)) for org_id in organization_ids)
    if wanted:
        _pending.set(_pending.get() + wanted)


def _forget_pending(**kwargs) -> None:
    _pending.set(())


def _start_pending(**kwargs) -> None:
    wanted = _pending.get()
    if not wanted:
        return
    _pending.set(())
    groups: dict[str, list[int]] = {}
    for model, org_id in dict.fromkeys(wanted):
        groups.setdefault(model, []).append(org_id)
    for model, org_ids in groups.items():
        try:  # the response is already sent: log instead of raising
            for kind, resource in resources_writing(model):
                sync_request(kind=kind, resource=resource, organization_ids=org_ids)
        except Exception:
            log.exception("could not request the runs refreshing %s", model)


def connect_signals() -> None:
    request_started.connect(_forget_pending, dispatch_uid="sync.refresh.started")
    # Run before Django's own close_old_connections receiver (connected when django.db loads), so the
    # start uses the request's database connection and Django then closes it as usual. Connected after
    # it, it would open a second connection per request that idles until the thread's next request.
    # (Django's test client disconnects and reconnects close_old_connections the same way.)
    reorder = request_finished.disconnect(close_old_connections)
    request_finished.connect(_start_pending, dispatch_uid="sync.refresh.finished")
    if reorder:
        request_finished.connect(close_old_connections)
