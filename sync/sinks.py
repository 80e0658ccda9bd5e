"""Sinks: where a run's records go. A connector declares one (``Connector.sink``); None is the TableSink.

- ``TableSink``: the engine's write path. Each batch of mapped records is upserted into the resource's
  domain table keyed by (connection, external_id); deletions set ``deleted_at``; a complete full scan
  marks the rows it did not see deleted.
- ``DocumentSink``: the records land in the domain table exactly as above (so retries, status, counts and
  the dashboard are the engine's own), and when a run has fetched and processed EVERYTHING, the complete,
  non-deleted rows are rendered into one document and handed to a writer (MDM: one S3 object). A run
  that failed, or left any line failed, cancelled or unfinished, never reaches that step, so the
  previous document (and every reader's cache) stays as it was. A writer that raises fails the run.

The runner (``sync.engine.QueueRunner``) calls ``write`` per batch, ``mark_missing_deleted`` after a
complete scan and ``complete`` once before it settles the queue.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Collate
from django.utils.module_loading import import_string

from core import clock

from . import bulk
from .activity import activity_record
from .models import ActivityLevel, SyncQueue, SyncQueueLine
from .records import ERASED
from .signals import sync_run_finished

# ``run`` below is the sync.engine.QueueRunner working the queue (queue, connection, resource, model);
# not imported, so that the engine depends on its sinks and never the other way round.
QueueRunner = Any

log = logging.getLogger(__name__)


class SinkError(Exception):
    """The sink could not take the run's records (a document write failed). Fails the run."""

    def __init__(self, message: str, *, stage: str = "write", error_type: str = "") -> None:
        super().__init__(message)
        self.stage = stage
        self.error_type = error_type or self.__class__.__name__


ROW_GUARD = bulk.Guard(version="sync_version", hash="sync_hash", revive="deleted_at", sealed=ERASED)


class TableSink:
    """Upserts into the resource's domain model (today's write path, moved here from the engine).

    ``outcome``: optional dotted path of ``record(connection, queue, skip_reason)`` that records a run's
    outcome the connector's own way (MuleSoft's four logged outcomes, MDM's export history and alert). It
    is called once a run has settled (queue given) or was skipped by its policy (queue None, the reason
    given), by the runner in its own process and again by the ``sync_run_finished`` receiver for runs
    settled elsewhere (the reaper, force-done): it must be idempotent per queue."""

    # Columns every synced row carries besides the mapped values: updated on every write, never hashed.
    BOOKKEEPING = frozenset({"synced_at", "deleted_at", "organization", "sync_version", "sync_hash"})

    def __init__(self, *, outcome: str = "") -> None:
        self.outcome = outcome

    def record_outcome(self, connection, queue, skip_reason: str = "") -> None:
        if not self.outcome:
            return
        try:
            import_string(self.outcome)(connection, queue, skip_reason)
        except Exception:  # the run is already recorded; its connector's bookkeeping must not undo that
            log.exception("outcome hook %s failed for queue %s", self.outcome, getattr(queue, "pk", None))

    def write(self, run: QueueRunner, upserts: list[tuple[SyncQueueLine, dict]], deletes: list[SyncQueueLine], now):
        model, connection = run.model, run.connection
        if deletes and db_connection.vendor == "postgresql":
            # The upsert takes its rows' locks in key order, but the delete after it would take its own in
            # whatever order it scans them: a run (upsert A, delete B) and a webhook batch (upsert B,
            # delete A) deadlocked. Lock every existing row we touch first, in the upsert's key order.
            keys = [line.external_id for line, _ in upserts] + [line.external_id for line in deletes]
            list(
                model.objects.select_for_update()
                .filter(connection_id=connection.pk, external_id__in=keys)
                .order_by(Collate("external_id", "C"))  # byte order, as the upsert (bulk._upsert_copy)
                .values_list("id", flat=True)
            )
        if upserts:
            # Sorted by key: two batches upserting overlapping rows (a run and the webhook lane) then
            # take the rows' locks in the same order and cannot deadlock each other.
            sample = upserts[0][1]  # fields_to_update's sample: the first row given, as before the sort
            upserts = sorted(upserts, key=lambda pair: pair[0].external_id)
            insert_only = getattr(run, "insert_only", False)
            encoded = getattr(run, "encoded_rows", None)
            chunks = [encoded.get(line.external_id) for line, _ in upserts] if encoded else None
            if chunks and None not in chunks and insert_only:
                written = bulk.insert_encoded(model, chunks)  # a first sync's rows, encoded by row_encoder
            else:
                base = self._base(connection, now)
                if insert_only and self._own_rows() and all("sync_hash" in values for _, values in upserts):
                    # What _row gives for these values, its dicts left unbuilt (bulk.NewRows); the engine's
                    # first sync of a connection.
                    rows = bulk.NewRows(base, "external_id", [(line.external_id, values) for line, values in upserts])
                else:
                    rows = [self._row(base, line.external_id, values) for line, values in upserts]
                if insert_only:
                    written = bulk.insert_new(model, rows)  # the engine's first sync of a connection
                else:
                    fields = self.fields_to_update(run, sample)
                    written = bulk.upsert_rows(
                        model, rows, unique_fields=["connection", "external_id"], update_fields=fields, guard=ROW_GUARD
                    )
            run.rows_written = getattr(run, "rows_written", 0) + (written or 0)
        if deletes:
            self._delete(run, deletes, now)

    @staticmethod
    def _base(connection, now) -> dict:
        return {
            "organization_id": connection.organization_id,
            "connection_id": connection.pk,
            "synced_at": now,
            "deleted_at": None,
        }

    @classmethod
    def _own_rows(cls) -> bool:
        """Whether this sink's rows are TableSink's own (a subclass may change _base or _row)."""
        return cls._row is TableSink._row and cls._base is TableSink._base

    @staticmethod
    def _row(base: dict, external_id: str, values: dict) -> dict:
        # A new dict: the one-by-one fallback reuses the values, do not mutate them. The version and the
        # snapshot's hash came with the values (the engine's _map): an equal snapshot writes nothing, an
        # older one never replaces a newer (bulk.Guard).
        row = {**base, **values, "external_id": external_id}
        if "sync_hash" not in values:  # values mapped elsewhere than the engine's _map
            row["sync_hash"] = bulk.content_hash(values)
        return row

    def row_encoder(self, run: QueueRunner):
        """For a connection's first sync (the rows ``write`` will insert_new): a function
        ``(external_id, values, now) -> encoded | None`` giving the row as ``write`` would send it for that
        record, for the engine to encode ahead, in its fetch thread or fetch process (passed back to ``write``
        as ``run.encoded_rows``, used with ``insert_only``; a record encoded None sends its group the usual
        way): on PostgreSQL its binary COPY row (None when this model has no binary COPY here), on SQLite the
        parameters insert_new would bind (bulk.NewRowEncoder; only TableSink's own rows). Call it where the
        database may be used. A subclass that changes the rows in ``write`` must change them here too (or
        return None)."""
        connection = run.connection
        own_row = self._own_rows()
        bases: list = [object(), None]  # (now, its base): the engine passes one ``now`` per page; read-only

        def base_for(now) -> dict:
            if bases[0] is not now:
                bases[:] = now, self._base(connection, now)
            return bases[1]

        if db_connection.vendor != "postgresql":
            if not own_row:
                return None
            new_rows = bulk.NewRowEncoder(run.model)

            def encode_new(external_id: str, values: dict, now) -> list | None:
                if "sync_hash" not in values:  # _row would add a content hash: the usual way
                    return None
                return new_rows.encode(base_for(now), values, "external_id", external_id, now)

            return encode_new
        encoder = bulk.RowEncoder.for_model(run.model)
        if encoder is None:
            return None

        def encode(external_id: str, values: dict, now) -> bytes | None:
            if not own_row or "sync_hash" not in values:  # a subclass's rows, or _row adds a content hash
                return encoder.encode(self._row(self._base(connection, now), external_id, values), now)
            # The row _row would build, without building it (bulk.RowEncoder.encode_parts).
            return encoder.encode_parts(base_for(now), values, {"external_id": external_id}, now)

        return encode

    def _delete(self, run: QueueRunner, deletes: list[SyncQueueLine], now) -> None:
        """Tombstones set ``deleted_at``; one carrying a version (Lightspeed's deleted objects) deletes only
        a row whose stored snapshot is not newer, and records that version."""
        by_version: dict[str | None, list[str]] = {}
        for line in deletes:
            by_version.setdefault(run.version_of(line.payload), []).append(line.external_id)
        for version, ids in sorted(by_version.items(), key=lambda kv: kv[0] or ""):
            qs = run.model.objects.filter(connection_id=run.connection.pk, external_id__in=ids, deleted_at__isnull=True)
            changes: dict = {"deleted_at": now, "synced_at": now}
            if version is not None:
                qs = qs.filter(Q(sync_version__isnull=True) | Q(sync_version__lte=version))
                changes["sync_version"] = version
            qs.update(**changes)

    def fields_to_update(self, run: QueueRunner, sample: dict) -> list[str]:
        cached = getattr(run, "_update_fields", None)
        if cached is None:
            names = list(run.resource.update_fields or sample.keys())
            cached = sorted(set(names) | self.BOOKKEEPING - {"external_id", "connection"})
            run._update_fields = cached
        return cached

    def mark_missing_deleted(self, run: QueueRunner) -> None:
        """After a complete full scan: the live rows it did not see are marked deleted, unless that many
        would go, or the scan met a record it could not identify, so that the mass-deletion guard holds them
        for a person (sync.services.queue_apply_deletions)."""
        with transaction.atomic():  # the count, the guard's figures, the update and its activity row agree
            self._mark_missing_deleted(run)

    def _mark_missing_deleted(self, run: QueueRunner) -> None:
        missing = missing_rows(run.model, run.queue)
        with without_nested_loops():
            n = missing.count()
        if not n:
            return
        live = run.model.objects.filter(connection_id=run.queue.connection_id, deleted_at__isnull=True).count()
        # A record fetched without a usable id may be one of the "missing" rows: this scan cannot tell them
        # apart, so the guard holds its deletions as it holds a mass deletion (the operator applies them).
        unidentified = SyncQueueLine.objects.filter(
            queue=run.queue, external_id__startswith=bulk.UNIDENTIFIED_LINE_PREFIX
        ).count()
        if unidentified or deletion_held(n, live):
            SyncQueue.objects.filter(pk=run.queue.pk).update(pending_deletions=n)
            run.queue.pending_deletions = n
            why = (
                f"; {unidentified} record(s) it fetched could not be identified and may be among them"
                if unidentified
                else ""
            )
            activity_record(
                event="records.deletions_held",
                queue=run.queue,
                level=ActivityLevel.WARNING,
                message=(
                    f"{n} of {live} live {run.resource.name} record(s) were not seen by this full scan{why}; nothing "
                    "was deleted. If the upstream really lost them, apply the deletions on this queue"
                ),
                data={"count": n, "live": live, "unidentified": unidentified, **deletion_thresholds()},
            )
            return
        with without_nested_loops():
            n = missing.update(deleted_at=clock.now())
        if n:
            activity_record(
                event="records.marked_deleted",
                queue=run.queue,
                level=ActivityLevel.WARNING,
                message=f"{n} {run.resource.name} record(s) no longer exist upstream; marked deleted",
                data={"count": n},
            )

    def complete(self, run: QueueRunner) -> None:
        """Called once the runner has nothing left to do, before the queue settles. Tables need nothing."""


def missing_rows(model, queue: SyncQueue):
    """The live rows a full scan (``queue``) did not see: no line of the queue names them. Seen is decided by
    the lines, not by ``synced_at`` (an unchanged snapshot no longer writes its row). A row written after the
    scan began (a webhook's record, newer than the scan) is kept. A record PostgreSQL cannot store (a NUL
    character) failed on a line named apart (bulk.unstorable_line_id): it was seen all the same."""
    lines = SyncQueueLine.objects.filter(queue=queue)
    # NOT EXISTS, an anti-join on the lines' (queue, external_id) index: ``NOT IN (subquery)`` is hashed only
    # while the queue's ids fit in work_mem, and past that PostgreSQL rescans the lines for every row.
    seen = Exists(SyncQueueLine.objects.filter(queue=queue, external_id=OuterRef("external_id")))
    unstorable = [
        bulk.unstorable_line_record_id(line_id)
        for line_id in lines.filter(external_id__startswith=bulk.UNSTORABLE_LINE_PREFIX).values_list(
            "external_id", flat=True
        )
    ]
    missing = (
        model.objects.filter(connection_id=queue.connection_id, deleted_at__isnull=True)
        .filter(Q(synced_at__isnull=True) | Q(synced_at__lt=queue.started_at))
        .exclude(seen)
    )
    return missing.exclude(external_id__in=unstorable) if unstorable else missing


@contextlib.contextmanager
def without_nested_loops() -> Iterator[None]:
    """On PostgreSQL, a transaction (a savepoint inside one) whose statements are planned without nested loops:
    what missing_rows' anti-join needs; wrap only its statements, so nothing else inherits the setting. Its
    queue's lines are always new to the planner's statistics (and a first sync's rows are too, until autovacuum
    analyzes them), so it may expect a few lines where a full scan wrote thousands, and put a scan of every line
    of the queue inside a loop over the rows: quadratic. Measured (2026-12-05) on the second full scan of 3,000
    customers right after the first: 4.5 million line comparisons and 0.55 s for the count, against 3.6 ms once
    the plan had turned to the index. A hash or merge anti-join is linear whatever the estimates. The setting
    ends with the block (SET LOCAL semantics; a rollback undoes it with the rest; set_config(..., true) made in
    a savepoint would otherwise last until the outer transaction ends, hence the explicit restore). SQLite needs
    nothing: it probes the lines' unique index."""
    if db_connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with db_connection.cursor() as cur:
            cur.execute("SELECT current_setting('enable_nestloop')")
            before = cur.fetchone()[0]
            cur.execute("SELECT set_config('enable_nestloop', 'off', true)")
        yield
        with db_connection.cursor() as cur:  # not after an error: the rollback restores it
            cur.execute("SELECT set_config('enable_nestloop', %s, true)", [before])


def deletion_thresholds() -> dict:
    return {"min_rows": settings.SYNC_MASS_DELETE_MIN_ROWS, "fraction": settings.SYNC_MASS_DELETE_FRACTION}


def deletion_held(n: int, live: int) -> bool:
    """The mass-deletion guard: more than the row threshold AND more than the fraction of the live rows, or
    every live row at once (an upstream glitch answering an empty list must never wipe a table)."""
    if n <= 0:
        return False
    if n >= live:
        return True
    return n > settings.SYNC_MASS_DELETE_MIN_ROWS and n > settings.SYNC_MASS_DELETE_FRACTION * live


def run_is_complete(queue_id: int) -> bool:
    """Fetched to the end without error, and every line done: nothing failed, cancelled or pending."""
    q = (
        SyncQueue.objects.filter(pk=queue_id)
        .values(
            "fetch_done",
            "fetch_error",
            "cancelled_at",
            "draft_count",
            "processing_count",
            "failed_count",
            "cancelled_count",
            "is_active",
            "pending_deletions",
        )
        .first()
    )
    return bool(
        q
        and q["is_active"]
        and q["fetch_done"]
        and not q["fetch_error"]
        and q["cancelled_at"] is None
        and not (q["draft_count"] or q["processing_count"] or q["failed_count"] or q["cancelled_count"])
        # Deletions held by the guard: the data set is in doubt, the previous document stays.
        and not q["pending_deletions"]
    )


class DocumentSink(TableSink):
    """The table path, plus: after a complete run, the whole data set as ONE document.

    ``writer`` is the dotted path of ``write(connection, queue, rows: list[dict]) -> dict``; it raises on
    failure (the run fails, nothing else changes) and returns what it wrote (location, version, ...),
    recorded in the run's ``document.written`` activity. ``fields`` are the model fields rendered per row
    (in this order), ``order_by`` sorts the rows. Rows are the connection's non-deleted rows."""

    def __init__(
        self, *, writer: str, fields: tuple[str, ...], order_by: tuple[str, ...] = ("external_id",), outcome: str = ""
    ):
        super().__init__(outcome=outcome)
        self.writer = writer
        self.fields = fields
        self.order_by = order_by

    def rows(self, run: QueueRunner) -> list[dict]:
        qs = run.model.objects.filter(connection=run.connection, deleted_at__isnull=True).order_by(*self.order_by)
        return list(qs.values(*self.fields))

    def complete(self, run: QueueRunner) -> None:
        # Under the queue's lock, so two workers finishing the same queue do not both write it.
        with transaction.atomic():
            SyncQueue.objects.select_for_update().filter(pk=run.queue.pk).values_list("id", flat=True).first()
            if not run_is_complete(run.queue.pk):
                return  # failed, partial, cancelled or still being worked: the document stays as it was
            rows = self.rows(run)
            try:
                result: dict[str, Any] = import_string(self.writer)(run.connection, run.queue, rows) or {}
            except SinkError:
                raise
            except Exception as exc:  # a writer bug is still a failed write, not a crashed worker
                raise SinkError(f"{exc.__class__.__name__}: {exc}", error_type=exc.__class__.__name__) from exc
            activity_record(
                event="document.written",
                queue=run.queue,
                message=f"{len(rows)} {run.resource.name} record(s) written as one document",
                data={"count": len(rows), **{k: v for k, v in result.items() if isinstance(v, (str, int, float))}},
            )


def sink_for(kind: str) -> TableSink:
    from .registry import get_connector

    return get_connector(kind).sink or TableSink()


def _on_run_finished(sender, queue, succeeded, **kwargs) -> None:
    """Runs settled outside a runner (reaper, force-done, cancel) still get their outcome recorded."""
    if queue.lane == "run":
        sink_for(queue.connection.kind).record_outcome(queue.connection, queue)


sync_run_finished.connect(_on_run_finished, dispatch_uid="sync.sinks.outcome")
