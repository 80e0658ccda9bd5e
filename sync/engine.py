"""The generic engine loop: fetch pages into lines, process lines in batches, settle the queue.

Everything vendor-specific comes from the connector's Client and Resource; nothing here knows an
upstream by name. The task entry point is ``run_queue`` (see sync/tasks.py); it never raises.

Crash safety: every page and every batch is its own transaction. Fetch progress (``fetch_token``) is
saved with the page's lines, lines are claimed with a lease (attempt counted at claim), and the cursor
moves only in ``queue_finalize`` once the covered lines are committed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import logging
import marshal
import pickle
import struct
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db import connection as db_connection
from django.db.models import CharField, F, Min, Q, Value
from django.db.models.functions import Coalesce

from core import clock
from core.errors import (
    AuthError,
    BadPage,
    KnownBodyMismatch,
    MappingError,
    PaginationStalled,
    ReloadMismatch,
    UpstreamError,
)
from core.gctune import fewer_collections
from core.paging import FetchContext, KnownPage, LazyPage, Page
from core.redaction import redact
from core.revisions import module_source_digest
from sync.registry import get_connector

from . import bulk, fetchproc
from .activity import activity_record
from .fetchproc import ForkedProducer
from .models import ActivityLevel, LineAction, LineState, QueueState, StatusState, SyncQueue, SyncQueueLine
from .services import (
    Keyed,
    LineBlock,
    NewLine,
    connection_mark_needs_reauth,
    cursor_max,
    is_postgres,
    line_failed_record,
    lines_add,
    lines_insert,
    lines_move,
    lock_queue,
    pagememo_bodies,
    pagememo_body_key,
    pagememo_forget_bodies,
    pagememo_key,
    pagememo_lookup,
    pagememo_prune,
    pagememo_revision,
    pagememo_save,
    queue_finalize,
    queue_recount,
    queue_update_with,
    record_key,
    retry_delay,
    status_upsert,
)
from .sinks import SinkError, TableSink

log = logging.getLogger(__name__)

# Page memos are saved this many at a time (~1.6 kB each for pages of 100 records; see _save_memos).
MEMO_SAVE_PAGES = 256
# At most this many body memos are read at the start of a later full scan (~0.9 kB each for 100 records): a
# resource with more pages parses every body, as without them (sync.services.pagememo_bodies).
MAX_BODY_MEMOS = 50_000
# Longest pause we take inside a task waiting for a line's backoff; longer waits are left to the reaper.
MAX_INLINE_WAIT = 30.0
# What a model field raises for a value it cannot convert before the database sees it (a decimal column
# given a word): like a row the database rejects, that is one record's problem, isolated row by row.
_VALUE_REFUSED = (ValidationError, ValueError, TypeError)
# The most pages fetched ahead (whatever their size; _PageBuffer also bounds them by records).
MAX_PREFETCH_PAGES = 32


class RunAborted(Exception):
    """The queue was cancelled / forced done, or another worker took over the fetch: stop fetching."""


ProgressCallback = Callable[[SyncQueue], None]


def run_queue(queue_id: int, *, progress: ProgressCallback | None = None, batch_size: int | None = None) -> str | None:
    """Work one queue until nothing is left for this worker. Never raises; returns the final state or None."""
    try:
        queue = SyncQueue.objects.select_related("connection", "connection__organization").get(pk=queue_id)
    except SyncQueue.DoesNotExist:
        log.warning("run_queue: queue %s no longer exists", queue_id)
        return None
    if not queue.is_active:
        return queue.state  # a re-delivered task for a settled queue: nothing to do
    try:
        runner = QueueRunner(queue, progress=progress, batch_size=batch_size)
    except Exception as exc:  # unknown kind/resource, broken connector import: record it, do not raise
        log.exception("run_queue %s: cannot build a runner", queue_id)
        return _fail_unrunnable(queue, exc)
    try:
        return runner.run()
    except Exception as exc:  # the last line of defence: record FAILED, never crash the worker
        log.exception("run_queue %s crashed", queue_id)
        try:
            runner.fail(exc)
            settled = queue_finalize(queue=queue)
            if settled is not None:
                return settled.state
            queue.refresh_from_db(fields=["state"])
            return queue.state
        except Exception:
            log.exception("run_queue %s: could not even record the failure", queue_id)
        return QueueState.FAILED


def _fail_unrunnable(queue: SyncQueue, exc: Exception) -> str:
    message = redact(f"{exc.__class__.__name__}: {exc}")[:5000]
    now = clock.now()
    SyncQueue.objects.filter(pk=queue.pk).update(
        fetch_error=message, fetch_done=True, last_error=message, updated_at=now
    )
    activity_record(event="run.failed", queue=queue, level=ActivityLevel.ERROR, message=message)
    if queue.lane == "run":
        status_upsert(
            connection=queue.connection,
            resource=queue.resource,
            state=StatusState.FAILED,
            last_error=message,
            finished_at=now,
            last_queue=queue,
        )
    settled = queue_finalize(queue=queue)
    return settled.state if settled is not None else QueueState.FAILED


def _close_active_session(queue_id: int) -> None:
    """Add the session's time to ``active_seconds`` (the first worker to leave closes a shared session)."""
    now = clock.now()
    q = SyncQueue.objects.filter(pk=queue_id, active_since__isnull=False).values("active_since").first()
    if q is not None:
        SyncQueue.objects.filter(pk=queue_id, active_since=q["active_since"]).update(
            active_seconds=F("active_seconds") + max((now - q["active_since"]).total_seconds(), 0.0),
            active_since=None,
        )


class QueueRunner:
    def __init__(self, queue: SyncQueue, *, progress: ProgressCallback | None = None, batch_size: int | None = None):
        self.queue = queue
        self.connection = queue.connection
        self.connector = get_connector(self.connection.kind)
        self.resource = self.connector.resource(queue.resource)
        self.model = apps.get_model(self.resource.model)
        # Where the records go (sync.sinks): the connector's declaration, else the domain-table upsert.
        self.sink = self.connector.sink or TableSink()
        config = self.connection.config or {}
        self.batch_size = batch_size or int(config.get("batch_size") or settings.SYNC_BATCH_SIZE)
        # The fetcher processes new records of each page itself (see _store_page); off, every record
        # goes through draft lines and claimed batches.
        self.process_on_fetch = bool(config.get("process_on_fetch", settings.SYNC_PROCESS_ON_FETCH))
        # Pages already fetched are stored together, up to this many records per transaction (1: each page
        # alone): fewer, larger transactions when the upstream is faster than we write.
        self.fetch_group_records = int(config.get("fetch_group_records") or settings.SYNC_FETCH_GROUP_RECORDS)
        self.fetch_group_wait = settings.SYNC_FETCH_GROUP_WAIT_MS / 1000
        self.progress = progress
        self.client = None
        self.lease = dt.timedelta(seconds=settings.SYNC_LEASE_SECONDS)
        self._update_fields: list[str] | None = None
        self._fetch_lease_until: dt.datetime | None = None  # the fetch lease we hold, if any
        self._last_page_ids: list[str] | None = None
        self._check_queued = True  # look up "already in the queue?" per group (see fetch)
        self._ahead: tuple[str, int] | None = None  # (cursor_to, pages_fetched) of the groups prepared so far
        # Bounded text columns of the domain model (CharField max_length), checked per record in _map.
        self._bounds = {
            f.name: f.max_length
            for f in self.model._meta.concrete_fields
            if isinstance(f, CharField) and f.max_length and f.name not in ("external_id", "sync_version", "sync_hash")
        }
        self.rows_written = 0  # rows the sink inserted or updated (unchanged or older snapshots are not)
        self._revision = mapping_revision(self.resource)  # keys every row's source_hash (see _map)
        self._hash_ignores = tuple(getattr(self.resource, "hash_ignores", ()))
        # Does the connection have rows of this resource yet? (Read when the fetch starts.) If not, the
        # fetcher does not look for unchanged records (none can be stored), and it inserts the rows of its
        # groups without an upsert (``insert_only``, read by TableSink.write: a COPY straight into the table
        # on PostgreSQL, a plain INSERT on SQLite; bulk.insert_new): a first sync has nothing to merge with.
        # A row that is there after all (a webhook's, a record re-read in a later group) makes the group's
        # insert fail; the group is then written again with the upsert, which stays on (_store_retry).
        self._known_rows = True
        self.insert_only = False
        # First sync only (see _map_early): {id(a page's keyed records): its _PagePlan}, filled by the fetch
        # thread, taken by _prepare_pages. ``encoded_rows``: the group's encoded rows while TableSink.write
        # runs ({external id: bytes}, with ``insert_only``).
        self._map_ahead = False
        self._early: dict[int, _PagePlan] = {}
        self._encode = None
        self.encoded_rows: dict[str, Any] | None = None  # COPY rows (bytes) or SQLite parameter lists
        # The memo keys of the pages this fetch saw (sync.services.pagememo); None while memos are off.
        self._memo_seen: set[str] | None = None
        self._memo_pending: dict[str, bytes] = {}  # memos not saved yet (_save_memos)
        self._memo_prune = False
        self._memo_revision = b""

    # -- the run -------------------------------------------------------------------------------------------
    def run(self) -> str | None:
        q = self.queue
        now = clock.now()
        first_start = q.started_at is None
        # Under the queue row's lock, as queue_finalize settles it: a worker whose task arrives while another
        # settles the queue either sees it settled here and leaves the status alone, or marks it syncing
        # before the settle marks it done. (Checked before without the lock, a re-delivered task could write
        # "syncing" over the settled status for good.)
        with transaction.atomic():
            row = SyncQueue.objects.select_for_update().filter(pk=q.pk).values_list("is_active", "state").first()
            if row is None or not row[0]:
                return row[1] if row is not None else None
            SyncQueue.objects.filter(pk=q.pk).update(
                started_at=q.started_at or now,
                active_since=Coalesce(F("active_since"), Value(now)),  # a joining worker keeps the session's start
                process_runs=F("process_runs") + 1,
                updated_at=now,
                state=QueueState.PROCESSING if q.state == QueueState.DRAFT else q.state,
            )
            q.started_at = q.started_at or now
            if q.lane == "run":
                status_upsert(
                    connection=self.connection,
                    resource=q.resource,
                    state=StatusState.SYNCING,
                    started_at=now,
                    last_queue=q,
                    **({"last_error": ""} if first_start else {}),
                )
        if first_start:
            activity_record(event="queue.started", queue=q, message=f"run of {q.resource} started")
        try:
            self.client = self.connector.client(self.connection)
            with fewer_collections(settings.SYNC_GC_THRESHOLD):
                if not q.fetch_done:
                    self.fetch()
                self.process_until_empty()
            self.sink.complete(self)  # a document sink writes only after a complete run (sync.sinks)
        except AuthError as exc:
            connection_mark_needs_reauth(connection=self.connection, reason=str(exc))
            self.fail(exc)
        except (UpstreamError, SinkError) as exc:
            self.fail(exc)
        except RunAborted:
            self.process_until_empty()  # lines already claimed by others settle through them
        finally:
            if self.client is not None:
                self.client.close()
        _close_active_session(q.pk)
        settled = queue_finalize(queue=q)
        self._report()
        if settled is not None:
            if q.lane == "run":
                self.sink.record_outcome(self.connection, settled)
            return settled.state
        q.refresh_from_db(fields=["state"])
        return q.state

    def fail(self, exc: BaseException) -> None:
        """A run-level failure (fetch could not complete). Lines already fetched are still processed by
        whoever runs the queue next; the cursor stays where it was."""
        message = redact(exc if isinstance(exc, UpstreamError) else f"{exc.__class__.__name__}: {exc}")
        now = clock.now()
        SyncQueue.objects.filter(pk=self.queue.pk).update(
            fetch_error=message[:5000],
            fetch_done=True,
            fetch_lease_until=None,
            last_error=message[:5000],
            updated_at=now,
        )
        self.queue.fetch_error = message
        self.queue.fetch_done = True
        self._fetch_lease_until = None
        activity_record(
            event="run.failed",
            queue=self.queue,
            level=ActivityLevel.ERROR,
            message=message,
            data=_failure_data(exc),
        )
        if self.queue.lane == "run":
            status_upsert(
                connection=self.connection,
                resource=self.queue.resource,
                state=StatusState.FAILED,
                last_error=message,
                finished_at=now,
                last_queue=self.queue,
            )
        # Process what was fetched, then settle (FAILED / PARTIAL).
        try:
            self.process_until_empty()
        except Exception:
            log.exception("queue %s: processing after a failed fetch also failed", self.queue.pk)
        queue_recount(self.queue)  # a repair (see queue_recount), not a counter update: settling reads them

    # -- fetching ------------------------------------------------------------------------------------------
    def _new_lease_until(self) -> dt.datetime:
        # Random microseconds make our lease value distinguishable from another worker's taken at the
        # same instant, so "renew only if still mine" (compare-and-set on the value) is exact.
        return clock.now() + self.lease + dt.timedelta(microseconds=uuid.uuid4().int % 1_000_000)

    def _take_fetch_lease(self) -> bool:
        now = clock.now()
        until = self._new_lease_until()
        taken = bool(
            SyncQueue.objects.filter(pk=self.queue.pk, fetch_done=False, cancelled_at__isnull=True)
            .filter(Q(fetch_lease_until__isnull=True) | Q(fetch_lease_until__lt=now))
            .update(fetch_lease_until=until, updated_at=now)
        )
        self._fetch_lease_until = until if taken else None
        return taken

    def _renew_fetch_lease(self, deferred: tuple[list, Counter] | None = None, **updates) -> None:
        """Extend our fetch lease (and save ``updates`` with it) only if it is still ours and the queue
        still wants fetching. Otherwise raise RunAborted, rolling back the caller's transaction.
        ``deferred``: the group's line inserts and line counts left by lines_insert(defer=...), run and
        counted in the same statement (queue_update_with)."""
        statements, counts = deferred or ([], Counter())
        queue = SyncQueue.objects.filter(pk=self.queue.pk)
        now = clock.now()
        if self._fetch_lease_until is None:
            if statements or counts:  # no lease to renew, no progress saved; the group's lines still count
                queue_update_with(queue, {"updated_at": now}, statements, counts)
            return
        until = self._new_lease_until()
        mine = queue.filter(fetch_done=False, cancelled_at__isnull=True, fetch_lease_until=self._fetch_lease_until)
        n = queue_update_with(mine, {**updates, "fetch_lease_until": until, "updated_at": now}, statements, counts)
        if not n:
            self._fetch_lease_until = None
            raise RunAborted()
        self._fetch_lease_until = until

    def fetch(self) -> None:
        if not self._take_fetch_lease():
            return  # another worker is fetching; we help with the lines instead
        q = self.queue
        q.refresh_from_db(fields=["fetch_token", "cursor_to", "pages_fetched", "cursor_from"])
        ctx = FetchContext(
            client=self.client,
            cursor=q.cursor_from if not q.full_scan else "",
            token=q.fetch_token,
            full_scan=q.full_scan,
            params=q.params,
        )
        # Lines of a queue that had none when this fetch took the lease were all inserted by this fetch:
        # no "already queued?" lookup per group then (the unique index is the backstop, see _store_inline).
        self._check_queued = SyncQueueLine.objects.filter(queue_id=q.pk).exists()
        self._known_rows = self.model.objects.filter(connection_id=self.connection.pk).exists()
        self._map_ahead = self.process_on_fetch and not self._known_rows
        self._memo_start(ctx)
        # Made here, in the thread that owns the database connection (it reads the connection's adapters).
        # On SQLite too: preparing the rows' values in the fetch thread alone measured no faster (both threads
        # share one interpreter lock), but a page whose rows are encoded lets its records go there (_released):
        # a 100,000-customer first sync on SQLite took 3.84 s against 4.07 s (4 interleaved rounds, 2026-12-05).
        row_encoder = getattr(self.sink, "row_encoder", None)
        self._encode = row_encoder(self) if self._map_ahead and row_encoder else None
        writer = _GroupWriter(q.pk) if self._can_pipeline() else None
        pending = None  # the group the writer thread is committing while we prepare the next one
        try:
            # closing(): stop the producer thread the moment we stop consuming (an error, a cancel), not
            # whenever the generator happens to be garbage-collected.
            with contextlib.closing(self._prefetched(ctx)) as groups:
                for group in groups:
                    prepared = self._prepare_pages(group)
                    if pending is not None:
                        self._after_store(pending.result())
                        pending = None
                    if writer is None:
                        self._after_store(self._store_pages(group, prepared=prepared))
                    else:
                        pending = writer.submit(self._store_pages, group, prepared=prepared)
                if pending is not None:
                    self._after_store(pending.result())
                    pending = None
        except KnownBodyMismatch:
            # The body memos cannot be trusted (their ids chose how this fetch paged): the run fails as for a
            # bad page, with its token where the last stored group left it, and the next run parses every body.
            self._memo_call(pagememo_forget_bodies, self.connection.pk, self.resource.name)
            raise
        finally:
            if writer is not None:
                writer.close(pending)
            self._ahead = None
            self._early.clear()
        # Fetch complete: only if our lease still stands (else another worker finished/took it over).
        self._renew_fetch_lease()
        now = clock.now()
        SyncQueue.objects.filter(pk=q.pk, fetch_lease_until=self._fetch_lease_until).update(
            fetch_done=True, fetch_lease_until=None, updated_at=now
        )
        self._fetch_lease_until = None
        q.fetch_done = True
        if self.resource.mark_missing_deleted and (q.full_scan or self.resource.cursor_kind == "none"):
            self.sink.mark_missing_deleted(self)
        self._memo_finish()

    def _after_store(self, drafts: int) -> None:
        # A cancel is seen by _store_pages: renewing the fetch lease fails once cancelled_at is set.
        if drafts:
            self.process_available()  # nothing is being written meanwhile: the writer is idle here
        else:
            self._report()

    def _can_pipeline(self) -> bool:
        """Write each group from a writer thread (its own connection) while this thread prepares the next
        one, so Python and PostgreSQL work at once instead of in turn (a first sync's mapping is prepared
        here; a later sync maps its changed records in the writer, see _store_inline). PostgreSQL only
        (SQLite has one writer anyway), and never inside a caller's transaction, which a second connection
        could not see."""
        return bool(
            settings.SYNC_WRITE_PIPELINE
            and self.process_on_fetch
            and is_postgres()
            and not db_connection.in_atomic_block
        )

    def _prefetched(self, ctx: FetchContext):
        """Fetch pages in a producer thread (HTTP only, no DB) so the network overlaps our writes. Yields
        groups of consecutive (page, keyed records): each one that is ready, up to ``fetch_group_records``
        records. A page that fails its checks (_key_page) is raised after the pages before it were yielded,
        so they are stored first."""
        # Up to two groups' worth of records wait (at least one page): the fetchers keep going while a group
        # is mapped and written, and memory stays bounded by records, not by pages of unknown size.
        buf = _PageBuffer(max_records=2 * self.fetch_group_records, max_pages=MAX_PREFETCH_PAGES)
        stop = threading.Event()
        done = object()

        # A first sync's fetch side in a process of its own where it can be (_fetch_process): this thread then
        # only reads back what it sends.
        process = self._fetch_process(ctx)

        def produce():
            pages = None
            try:
                pages = self._received(process) if process else self._planned_pages(ctx, release=True)
                for page, keyed in pages:
                    if not buf.put((page, keyed), len(keyed), stop):
                        return
                buf.put(done, 0, stop)
            except BaseException as exc:  # handed to the consumer, raised there
                buf.put(exc, 0, stop)
            finally:
                if pages is not None:
                    pages.close()
                db_connection.close()  # a resource that touched the DB must not leak this thread's connection

        thread = threading.Thread(target=produce, name=f"fetch-queue-{self.queue.pk}", daemon=True)
        try:
            thread.start()
        except BaseException:
            if process is not None:
                process.stop()  # no reader: the child would block on a full pipe for good
            raise
        try:
            item = buf.get()
            while True:
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                # Take the pages that are waiting, and those arriving within SYNC_FETCH_GROUP_WAIT of the first:
                # one transaction for them. Each group costs a few round trips whatever its size, so when
                # this thread is ahead of the fetchers (an unchanged later sync: 50,000 customers came in 58
                # groups of ~860 records), a short wait for fuller groups costs less than the groups it saves.
                group, size, item = [item], len(item[1]), None
                until = time.monotonic() + self.fetch_group_wait
                while size < self.fetch_group_records:
                    item = buf.get_nowait()
                    if item is None:
                        left = until - time.monotonic()
                        item = buf.get(timeout=left) if left > 0 else None
                    if item is None or item is done or isinstance(item, BaseException):
                        break
                    group.append(item)
                    size += len(item[1])
                    item = None
                yield group
                if item is None:
                    item = buf.get()
        finally:
            stop.set()
            if process is not None:
                process.stop()  # a producer waiting on the pipe reads its end at once
            thread.join(timeout=5)

    def _planned_pages(self, ctx: FetchContext, *, release: bool = False, shipping: bool = False):
        """The resource's pages as (page, keyed records), each keyed and checked for a stalled paging loop as
        it arrives (a loop is caught at its second page, before the pages after it are asked for), and a first
        sync's planned (_map_early) and, with ``release``, its records let go where the page can make them
        again (_released). A page kept whole drops its reload (the body), unless ``shipping`` (a fetch process:
        _ship sends the reload's values instead of the records)."""
        pages = self.resource.iter_pages(ctx)
        try:
            for page in pages:
                keyed = self._key_page(page)
                if self._map_ahead:
                    self._map_early(page, keyed)
                    if release and page.reload is not None:
                        page, keyed = self._released(page, keyed)
                if page.reload is not None and type(page) is Page and not shipping:  # kept: not its body too
                    page = dataclasses.replace(page, reload=None)
                yield page, keyed
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    # -- the fetch process (sync.fetchproc) -------------------------------------------------------------------
    def _fetch_process(self, ctx: FetchContext) -> ForkedProducer | None:
        """A first sync's fetch side (_planned_pages: requests, parse, key, hash, map, row encoding) in a
        forked child, or None to fetch in a thread as before. Only where wanted (fetchproc.wanted,
        SYNC_FETCH_PROCESS: by default on SQLite with two CPUs or more, not on PostgreSQL) and safe: a first sync
        whose every row is encoded ahead (TableSink.row_encoder: PostgreSQL's binary COPY, SQLite's parameters)
        and where sync.fetchproc.unavailable finds nothing against a fork (another thread, a transaction, a
        pool), on a database the child can open itself (not an in-memory SQLite one).
        The child fetches with a client of its own (the parent's keeps its sockets) and holds no database
        connection of ours; what it sends of each page is _ship's."""
        if not (self._map_ahead and fetchproc.wanted()):
            return None
        reason = fetchproc.unavailable()
        if reason is None and db_connection.vendor == "sqlite" and db_connection.is_in_memory_db():
            # Django's close() keeps an in-memory database open (closing would lose it), so the child would
            # inherit the connection, and what it wrote there (a token refresh) would stay in its own copy.
            reason = "an in-memory SQLite database"
        if reason is not None:
            global _THREAD_SAID
            # At INFO where asked for; where chosen by default ("auto"), once a process, then at DEBUG.
            level = logging.INFO if settings.SYNC_FETCH_PROCESS is True or not _THREAD_SAID else logging.DEBUG
            _THREAD_SAID = True
            log.log(level, "queue %s: fetching in a thread, not a process: %s", self.queue.pk, reason)
            return None
        if self._encode is None:  # (made in fetch: PostgreSQL's binary COPY rows, SQLite's parameters)
            return None

        def produce():
            own = dataclasses.replace(ctx, client=self.connector.client(self.connection))
            try:
                for page, keyed in self._planned_pages(own, shipping=True):
                    yield _ship(page, keyed, self._early.pop(id(keyed)), self.resource)
            finally:
                own.client.close()

        try:
            return ForkedProducer(produce, name=f"fetch-queue-{self.queue.pk}")
        except OSError as exc:  # no memory or process slot for a child: the thread does the same work
            log.warning("queue %s: fetching in a thread, the fetch process did not start (%s)", self.queue.pk, exc)
            return None

    def _received(self, process: ForkedProducer):
        items = iter(process)
        try:
            for item in items:
                yield self._unship(item)
        finally:
            items.close()  # reaps the child, closes the pipe

    def _unship(self, shipped: tuple) -> tuple[Page, list[Keyed]]:
        """A page as _ship sent it, with its plan (_PagePlan) made ready for _prepare_pages. Its records are
        made only when a path reads them (_real): from the page's reload where it travelled (_travelling,
        called on this process's resource and checked against the ids), else unpacked (_shipped_page). A first
        sync's rows go as the encoded rows the child encoded, so mostly none is; an upsert's values are
        _SHIPPED (mapped again only if needed, _store_inline)."""
        meta, ids, key_errors, deleted, failed, hashes, encoded, records = shipped
        next_token, cursor, total, digest, body_digest, body_ids = meta
        fields = {
            "next_token": next_token,
            "cursor": cursor,
            "total": total,
            "digest": digest,
            "body_digest": body_digest,
            "body_ids": body_ids,
        }
        if type(records) is tuple:  # the page's reload (_travelling), made again over this process's resource
            name, args = records
            page = _remade(functools.partial(getattr(self.resource, name), *args), self.resource, ids, fields)
        else:
            page = _shipped_page(records, **fields)
        keyed = [Keyed(_Later(page, i), ext) for i, ext in enumerate(ids)]
        pp = _PagePlan(keyed, cursor)
        for i, error in key_errors.items():
            keyed[i] = Keyed(_real(keyed[i].record), None, error)
            pp.unkeyed.append(keyed[i])
        by_id = {k.external_id: k.record for k in keyed if k.external_id is not None}  # each id's last snapshot
        pp.by_id, pp.hashes, pp.encoded = by_id, hashes, encoded
        pp.failed = {ext: (_real(by_id[ext]), error, permanent) for ext, (error, permanent) in failed.items()}
        pp.ready = {ext: (record, LineAction.UPSERT, _SHIPPED) for ext, record in by_id.items() if ext not in failed}
        for ext in deleted:
            pp.ready[ext] = (_real(by_id[ext]), LineAction.DELETE, None)
        self._early[id(keyed)] = pp
        return page, keyed

    def _store_pages(self, group: list, *, prepared: _Prepared | None = None) -> int:
        """Store a group of consecutive pages (see _prepare_pages) in one transaction; returns how many lines
        it left in draft for the batch loop. ``group``: (page, keyed records) pairs as _prefetched yields
        them, or plain pages (keyed here); ``prepared``: the group already prepared."""
        if prepared is not None:
            return self._store_prepared(prepared)
        pairs, error = [], None
        for item in group:
            try:
                pairs.append(item if isinstance(item, tuple) else (item, self._key_page(item)))
            except UpstreamError as exc:
                error = exc  # the pages before the bad one still count: stored, then the error raised
                break
        drafts = self._store_prepared(self._prepare_pages(pairs)) if pairs else 0
        if error is not None:
            raise error
        return drafts

    def _key_page(self, page: Page) -> list[Keyed]:
        """Key each record of a page once (the rest of the path reads the key) and check that paging moves
        on: a page identical to the previous one while the token moves on raises PaginationStalled."""
        if isinstance(page, KnownPage):  # not parsed: its records are read only if asked for (_real)
            keyed = [Keyed(_Later(page, i), ext) for i, ext in enumerate(page.known_ids)]
            self._check_stall(page, keyed)
            return keyed
        if not isinstance(page.records, list):
            raise BadPage(f"{self.resource.name}: page records are not a list")
        keyed = [record_key(self.resource, record) for record in page.records]
        self._check_stall(page, keyed)
        return keyed

    def _page_cursor(self, page: Page):
        """The page's cursor: its own, or the greatest of its records' (None when it has none). A KnownPage's
        records carry none of their own (see there)."""
        if page.cursor is not None or isinstance(page, KnownPage):
            return page.cursor
        cursors = [c for c in (self.resource.record_cursor(r) for r in page.records if isinstance(r, dict)) if c]
        if not cursors:
            return None
        return max(cursors, key=lambda c: int(c) if self.resource.cursor_kind == "version" else c)

    def _map_early(self, page: Page, keyed: list[Keyed]) -> None:
        """A first sync (no row to compare with, so every record will be mapped): hash and map each record in
        the fetch thread as its page arrives. Mappers are pure, so the results are what _plan_inline would
        compute; done here, that work runs while the main thread waits on the database (B1 at 50,000
        customers, 4 interleaved rounds: 5.42 -> 4.43 s, 0.54 -> 0.64 of the plain loop, the same CPU).
        The page's share of the plan is made here too (_PagePlan: its ids' last snapshots, hashes, outcomes
        and encoded rows, and its cursor), so the main thread merges a group's pages dict by dict instead of
        record by record (_plan_inline). _prepare_pages takes the entry of the very list of keyed records it
        plans (the entry holds that list, so an id() is never reused while its entry exists).

        Each row is also encoded here (``self._encode``, the sink's row_encoder: PostgreSQL's COPY rows,
        SQLite's parameters): the main thread then sends the group's rows as they are. With mapping done
        ahead, the main thread's remaining work is mostly its round trips (50,000 customers, 4 interleaved rounds:
        3.93 -> 3.46 s); that CPU runs while the main thread waits on PostgreSQL."""
        bounds, revision, encode = not is_postgres(), self._revision, self._encode
        ignores = self._hash_ignores
        now = clock.now()  # the rows' synced_at: when their page was prepared, a moment before their commit
        pp = _PagePlan(keyed, self._page_cursor(page))
        for item in keyed:
            ext, record = item.external_id, item.record
            if ext is None:
                pp.unkeyed.append(item)  # lines_add records it as a failed, unidentifiable line
                continue
            source = bulk.source_hash(record, revision, ignores)
            action, values, failure = self._map(record, check_deleted=True, check_bounds=bounds, source=source)
            if ext in pp.by_id:  # an id twice in the page: its last snapshot wins
                pp.forget(ext)
            pp.by_id[ext], pp.hashes[ext] = record, source
            if failure is not None:
                pp.failed[ext] = (record, *failure)
                continue
            pp.ready[ext] = (record, action, values)
            # Encoded for the sink's COPY here too (TableSink.row_encoder): that CPU then leaves the main
            # thread, whose database round trips are the run's critical path.
            if encode is not None and action == LineAction.UPSERT and values is not None:
                encoded = encode(ext, values, now)
                if encoded is not None:
                    pp.encoded[ext] = encoded
        self._early[id(keyed)] = pp

    def _released(self, page: Page, keyed: list[Keyed]) -> tuple[Page, list[Keyed]]:
        """A planned page (_map_early) with its records let go, here in the fetch thread, soon after they were
        parsed: a LazyPage that makes them again (Page.reload, checked by _reload_checked) on the paths that
        read one (_real: a group written again, stored as drafts), and the values _SHIPPED (mapped again only
        if needed, _shipped_values), as a fetch process's pages come (_unship). Otherwise a group's ~3,000
        records wait for its commit and are freed by whichever thread drops it last, long after they left the
        caches: 0.42 s of interpreter time in a 100,000-customer first sync (py-spy, 2026-12-05; parsed pages
        alone: 0.21 s freed 30 at a time against 0.04 s each freed at once). With this, that sync took 3.42 s
        against 3.86 s (8 interleaved rounds). Only a page whose every upsert was encoded: a row the encoder
        gave up on sends its group's _SHIPPED rows to be mapped again. Records that failed their mapping,
        have no id or map to a deletion are kept."""
        pp = self._early.get(id(keyed))
        if pp is None or pp.keyed is not keyed or not pp.encoded:
            return page, keyed
        encoded, by_id, ready = pp.encoded, pp.by_id, pp.ready
        if sum(1 for _, action, _ in ready.values() if action == LineAction.UPSERT) != len(encoded):
            return page, keyed
        ids = [item.external_id for item in keyed]
        fields = {f.name: getattr(page, f.name) for f in dataclasses.fields(Page) if f.name not in _NOT_KEPT}
        lazy = _remade(page.reload, self.resource, ids, fields)
        later: list[Keyed] = []
        for i, item in enumerate(keyed):
            ext = item.external_id
            if ext in encoded:  # a row ready to COPY (an id twice in the page: each snapshot its own index)
                item = Keyed(_Later(lazy, i), ext)
                by_id[ext] = item.record  # the last snapshot wins, as in _map_early
            later.append(item)
        for ext in encoded:
            ready[ext] = (by_id[ext], LineAction.UPSERT, _SHIPPED)
        self._early.pop(id(keyed), None)
        pp.keyed = later
        self._early[id(later)] = pp
        return lazy, later

    def _prepare_pages(self, group: list[tuple[Page, list[Keyed]]]) -> _Prepared:
        """Everything about a group of consecutive pages that needs no database: the progress to save and the
        plan of what the fetcher writes itself (_plan_inline: hashes, and a first sync's mapping). Runs ahead
        of the writer (``_ahead``: the progress of the groups prepared but perhaps not yet committed).

        The group is stored by _store_prepared in one transaction with the fetch progress; it is what the
        producer had ready, or made ready within ``fetch_group_wait`` (at least one page, up to
        ``fetch_group_records`` records): a slow upstream gets each page written within that wait of its
        arrival, a fast one gets fewer, larger transactions. With ``process_on_fetch``
        (the default) the fetcher also processes the group's new, mappable records in that transaction: their
        rows are upserted and their lines inserted done (attempt 1). A crash before the commit loses the
        group as a whole (the token did not move, so it is fetched again); nothing is half-written.
        Everything else (records already in the queue, records the mapper rejects) becomes a draft line and
        takes the claimed path, with its retries; a group the database rejects is stored again all in
        draft, so the claimed path isolates the bad record."""
        q = self.queue
        cursor_to, pages_fetched = self._ahead or (q.cursor_to, q.pages_fetched)
        records: list[Keyed] = []
        updates: dict = {}
        pages: list[_PagePlan | None] = []
        for page, page_keyed in group:
            pp = self._early.pop(id(page_keyed), None)
            if pp is not None and pp.keyed is not page_keyed:
                pp = None  # not this page's (an id() reused): planned here instead
            pages.append(pp)
            page_cursor = pp.cursor if pp is not None else self._page_cursor(page)
            if page_cursor:
                cursor_to = cursor_max(self.resource.cursor_kind, cursor_to, str(page_cursor))
            if page.total is not None:
                updates["expected_total"] = page.total
            records.extend(page_keyed)
        pages_fetched += len(group)
        updates.update(fetch_token=group[-1][0].next_token, cursor_to=cursor_to, pages_fetched=pages_fetched)
        self._ahead = (cursor_to, pages_fetched)
        digested = [(page.digest, page_keyed) for page, page_keyed in group]
        self._body_memos(group)
        plan = self._plan_inline(records, pages, digested) if self.process_on_fetch else None
        return _Prepared(records, plan, updates)

    def _store_prepared(self, prepared: _Prepared) -> int:
        q = self.queue
        records, plan, updates = prepared.records, prepared.plan, prepared.updates
        try:
            drafts = self._store_page_lines(records, plan, updates)
        except (OperationalError, InterfaceError, RunAborted, SyncQueue.DoesNotExist, ReloadMismatch):
            self._ahead = None
            # The database went away, the fetch is no longer ours, or the queue was deleted (lock_queue): the
            # group is lost as a whole; as draft lines it would fail the same way. So for a page whose records
            # came back otherwise (ReloadMismatch): their drafts' payloads would be wrong.
            raise
        except IntegrityError as exc:
            if plan is None:
                self._ahead = None
                raise
            drafts = self._store_retry(prepared, exc)
        except Exception as exc:
            if plan is None:
                self._ahead = None
                raise
            drafts = self._store_as_drafts(prepared, exc)
        q.cursor_to, q.fetch_token, q.pages_fetched = (
            updates["cursor_to"],
            updates["fetch_token"],
            updates["pages_fetched"],
        )
        return drafts

    def _store_retry(self, prepared: _Prepared, exc: IntegrityError) -> int:
        """An inline write refused by a constraint: if we skipped the "already queued?" lookup, a record
        seen in an earlier group of this fetch may be why (the lines' unique index said so); if we inserted
        rows without an upsert, a row already there may be why. Look up and upsert from now on and try the
        group again. Otherwise (or again) the group goes the draft way."""
        if self._check_queued and self._known_rows:
            return self._store_as_drafts(prepared, exc)
        self._check_queued = True
        self._known_rows = True
        self._encode = None  # rows are upserted from now on: encoding them ahead for a plain COPY is waste
        try:
            return self._store_page_lines(prepared.records, prepared.plan, prepared.updates)
        except (OperationalError, InterfaceError, RunAborted, SyncQueue.DoesNotExist, ReloadMismatch):
            self._ahead = None
            raise
        except Exception as again:
            return self._store_as_drafts(prepared, again)

    def _store_as_drafts(self, prepared: _Prepared, exc: Exception) -> int:
        q = self.queue
        records, updates = prepared.records, prepared.updates
        log.warning(
            "queue %s: writing pages up to %s inline failed (%s: %s); storing them as draft lines",
            q.pk,
            updates["pages_fetched"],
            exc.__class__.__name__,
            redact(exc)[:200],
        )
        try:
            return self._store_page_lines(records, None, updates)
        except BaseException:
            self._ahead = None
            raise

    def _store_page_lines(self, records: list, plan, updates: dict) -> int:
        with transaction.atomic():
            if plan is None:
                bulk.relaxed_commit()  # (the inline path does it with its queue lock)
                drafts = lines_add(self.queue, self.resource, _materialized(records))
                deferred = None
            else:
                drafts, deferred = self._store_inline(plan)
            # Progress is saved with the page's lines and only while we still hold the fetch lease; the done
            # lines and their counters go in that same statement (each round trip of this thread also waits
            # for the GIL to come back from the fetch threads: 3-9 ms a statement, measured per group).
            self._renew_fetch_lease(deferred, **updates)
        return drafts

    def _plan_inline(
        self,
        records: list[Keyed],
        pages: list[_PagePlan | None] = (),
        digested: list[tuple[bytes | None, list[Keyed]]] = (),
    ) -> _Plan:
        """Plan what the fetcher writes itself of a group: each id's last snapshot (as in lines_add) with
        its source hash, and the records it cannot identify (for lines_add). A first sync (no row to
        compare with) is mapped here (_resolve); a later one is mapped by _store_inline once the group's
        lock statement has said which records are unchanged (one round trip for both). ``pages``: the
        group's pages as the fetch thread planned them (_map_early), None for a page it did not;
        ``digested``: each page's (Page.digest, keyed records), for the page memos (_hashes)."""
        if pages and None not in pages:
            plan = self._merge_pages(pages)
            self._remember(digested, [pp.hashes for pp in pages])
            return plan
        by_id: dict[str, dict] = {}
        unkeyed: list[Keyed] = []
        for keyed in records:
            if keyed.external_id is None:
                unkeyed.append(keyed)  # lines_add records it as a failed, unidentifiable line
            else:
                by_id[keyed.external_id] = keyed.record
        hashes = self._hashes(by_id, digested)
        plan = _Plan(by_id, hashes, {}, unkeyed, {})
        if not self._known_rows:
            self._resolve(plan, set())
        return plan

    # -- page memos (sync.services.pagememo) ----------------------------------------------------------------
    def _memo_start(self, ctx: FetchContext) -> None:
        """Memos serve full scans (an incremental run's pages are rarely the same twice; it neither reads,
        saves nor prunes them). They are keyed with pagememo_revision: the mapping revision and the code and
        libraries that make the records and their hashes. Pruned only after a fetch that began at the first
        page (a resumed one has not seen the pages before its start)."""
        q = self.queue
        on = settings.SYNC_PAGE_MEMO and self.process_on_fetch and (q.full_scan or self.resource.cursor_kind == "none")
        self._memo_seen, self._memo_pending = (set() if on else None), {}
        self._memo_prune = on and not q.pages_fetched
        self._memo_revision = pagememo_revision(self._revision, self.resource, ctx.client) if on else b""
        # Body memos (KnownPage): a later full scan whose rows the fetch compares (not a first sync, whose
        # records are all mapped, nor a scan that stores every record as a draft line with its payload).
        if on and self._known_rows and not self._map_ahead:
            bodies = self._memo_call(
                pagememo_bodies, self.connection.pk, self.resource.name, self._memo_revision, MAX_BODY_MEMOS
            )
            if bodies:
                revision = self._memo_revision

                def known_body(digest: bytes) -> list[int] | None:
                    key = pagememo_body_key(revision, digest)
                    memo = bodies.get(key)
                    ids = memo[:-_BODY_CHECK] if memo is not None and len(memo) % 8 == _BODY_CHECK % 8 else None
                    if ids is None or memo[-_BODY_CHECK:] != _body_check(key, ids):
                        return None  # none, or not what was saved (a memo's ids decide the paging: no guess)
                    return list(struct.unpack(f"<{len(ids) // 8}q", ids))

                ctx.known_body = known_body

    def _memo_finish(self) -> None:
        """A complete fetch: save what is pending; delete the memos of pages upstream no longer serves."""
        if self._memo_seen is not None:
            self._memo_call(self._flush_memos)
        if self._memo_seen and self._memo_prune:
            self._memo_call(pagememo_prune, self.connection.pk, self.resource.name, self._memo_seen)
        self._memo_seen, self._memo_pending = None, {}

    def _memo_call(self, fn, *args):
        """A memo statement. Memos only save work: one that fails (a database error: say, workers started
        before ``migrate`` made the table) is logged, memos are off for the rest of this fetch, and the run
        goes on hashing (inside a caller's transaction, under a savepoint so that it stays usable)."""
        try:
            if db_connection.in_atomic_block:
                with transaction.atomic():
                    return fn(*args)
            return fn(*args)
        except DatabaseError as exc:
            log.warning(
                "queue %s: page memos off for this fetch (%s: %s)",
                self.queue.pk,
                exc.__class__.__name__,
                redact(exc)[:200],
            )
            self._memo_seen, self._memo_pending = None, {}
            return None

    def _body_memos(self, group: list[tuple[Page, list[Keyed]]]) -> None:
        """Save the body memos of the group's parsed pages (Page.body_ids) and count every body it saw, known
        or not, as seen (so pruning keeps its memo)."""
        if self._memo_seen is None:
            return
        new: dict[str, bytes] = {}
        keys: list[str | None] = []
        for page, _ in group:
            if page.body_digest is None:
                continue
            key = pagememo_body_key(self._memo_revision, page.body_digest)
            keys.append(key)
            if page.body_ids is not None and not isinstance(page, KnownPage):
                new[key] = page.body_ids + _body_check(key, page.body_ids)
        if keys:
            self._save_memos(new, keys)

    def _hashes(self, by_id: dict[str, dict], digested: list[tuple[bytes | None, list[Keyed]]]) -> dict[str, str]:
        """The source hash of each id's last snapshot in the group. A page fetched before (its memo key, the
        page's digest with the memo revision, in sync.services.pagememo) takes its hashes from its memo;
        the others are hashed and their memos saved. An unchanged full scan of 50,000 WooCommerce customers
        spent ~15 % of its time hashing (SHA-256 over each record's sorted JSON, ~5-7 us a record here).
        Pages are merged in order, a later one's hash of an id replacing an earlier one's, as by_id keeps the
        id's last snapshot; a memo that does not hold one hash per identified record of its page is not used."""
        if self._memo_seen is None or not any(digest for digest, _ in digested):
            return {ext: self._source_hash(_real(record)) for ext, record in by_id.items()}
        keys = [pagememo_key(self._memo_revision, digest) if digest else None for digest, _ in digested]
        known = self._memo_call(pagememo_lookup, self.connection.pk, self.resource.name, [k for k in keys if k]) or {}
        hashes: dict[str, str] = {}
        new: dict[str, bytes] = {}
        for key, (_, keyed) in zip(keys, digested, strict=True):
            ids = [k.external_id for k in keyed if k.external_id is not None]
            memo = known.get(key) if key else None
            if memo is not None and len(memo) == _MEMO_HASH_BYTES * len(ids):
                text = memo.hex()
                step = 2 * _MEMO_HASH_BYTES
                # zip in the page's order: an id twice on the page ends with its last snapshot's hash.
                hashes.update(zip(ids, [text[i : i + step] for i in range(0, len(text), step)], strict=True))
                continue
            page = {k.external_id: self._source_hash(_real(k.record)) for k in keyed if k.external_id is not None}
            hashes.update(page)
            if key:
                blob = _memo_bytes(ids, page)
                if blob is not None:
                    new[key] = blob
        self._save_memos(new, keys)
        return hashes

    def _remember(self, digested: list[tuple[bytes | None, list[Keyed]]], hashes: list[dict[str, str]]) -> None:
        """Save the memos of pages the fetch thread hashed (a first sync's, _map_early)."""
        if self._memo_seen is None or not digested:
            return
        keys = [pagememo_key(self._memo_revision, digest) if digest else None for digest, _ in digested]
        new = {}
        for key, (_, keyed), page in zip(keys, digested, hashes, strict=True):
            blob = _memo_bytes([k.external_id for k in keyed if k.external_id is not None], page) if key else None
            if blob is not None:
                new[key] = blob
        self._save_memos(new, keys)

    def _save_memos(self, new: dict[str, bytes], keys: list[str | None]) -> None:
        """Memos are saved MEMO_SAVE_PAGES at a time (and when the fetch completes, _memo_finish): each
        statement of this thread also waits for the GIL to come back from the fetch threads, so one per group
        cost a first sync of 50,000 customers ~0.3 s (18 ms a group, 2 of them our CPU). A crash loses at
        most the memos not yet saved, which only means hashing those pages once more."""
        if self._memo_seen is None:  # turned off by a failed memo statement
            return
        self._memo_pending.update(new)
        self._memo_seen.update(k for k in keys if k)
        if len(self._memo_pending) >= MEMO_SAVE_PAGES:
            self._memo_call(self._flush_memos)

    def _flush_memos(self) -> None:
        if self._memo_pending:
            pagememo_save(self.connection.pk, self.resource.name, self._memo_pending)
            self._memo_pending = {}

    def _merge_pages(self, pages: list[_PagePlan]) -> _Plan:
        """_plan_inline for a group whose every page the fetch thread planned: its pages' dicts merged (in C),
        a later page's snapshot of an id replacing an earlier one's with its outcome (as lines_add keeps the
        last). Resolved for a first sync; with rows known meanwhile (a refused insert, _store_retry) left to
        _store_inline's look-up, the mapping kept."""
        by_id: dict[str, dict] = {}
        hashes: dict[str, str] = {}
        ready: dict[str, tuple] = {}
        failed: dict[str, tuple] = {}
        encoded: dict[str, bytes] = {}
        unkeyed: list[Keyed] = []
        for pp in pages:
            for ext in by_id.keys() & pp.by_id.keys():  # seen on an earlier page: this page's outcome counts
                ready.pop(ext, None)
                failed.pop(ext, None)
                encoded.pop(ext, None)
            by_id.update(pp.by_id)
            hashes.update(pp.hashes)
            ready.update(pp.ready)
            failed.update(pp.failed)
            encoded.update(pp.encoded)
            unkeyed.extend(pp.unkeyed)
        if self._known_rows:
            mapped = {ext: (action, values, None) for ext, (_, action, values) in ready.items()}
            mapped.update({ext: (None, None, failure) for ext, (_, *failure) in failed.items()})
            return _Plan(by_id, hashes, mapped, unkeyed, encoded)
        plan = _Plan(by_id, hashes, {}, unkeyed, encoded)
        plan.ready, plan.failed = ready, failed
        return plan

    def _resolve(self, plan: _Plan, unchanged: set[str]) -> None:
        """Split the plan's records into those the fetcher writes itself ({external id: (record, action,
        values)}; an ``unchanged`` one, whose row already holds this very snapshot, only gets its done line:
        a full scan of unchanged data costs no domain writes) and those whose mapping failed ({external id:
        (record, error, permanent)}: that was their first attempt)."""
        ready: dict[str, tuple[dict, str, dict | None]] = {}
        failed: dict[str, tuple[dict, str, bool]] = {}
        # No per-record checks that PostgreSQL makes anyway: a value too long for its column or a NUL
        # character makes the group's write fail, and the group is then stored as draft lines, where the
        # claimed path names the field (_check_bounds) or the NUL (lines_add) on that record's own line.
        bounds = not is_postgres()
        hashes, mapped = plan.hashes, plan.mapped
        for ext, record in plan.by_id.items():
            if ext in unchanged:
                ready[ext] = (record, LineAction.UPSERT, _UNCHANGED)
                continue
            record = _real(record)  # a changed record of a KnownPage: its page is parsed now
            action, values, failure = mapped.get(ext) or self._map(
                record, check_deleted=True, check_bounds=bounds, source=hashes[ext]
            )
            if failure is None:
                ready[ext] = (record, action, values)
            else:
                failed[ext] = (record, *failure)
        plan.ready, plan.failed = ready, failed

    def _lock_unchanged(self, hashes: dict[str, str]) -> set[str]:
        """Take the queue's lock (lock_queue) and look up the unchanged ids (_unchanged): on PostgreSQL in one
        statement, the look-up a subquery of the locking SELECT (each round trip of this thread also waits
        for the GIL to come back from the fetch threads)."""
        pairs = self._unchanged_pairs(hashes)
        if pairs is None or not is_postgres():
            lock_queue(self.queue.pk, relaxed_commit=True)
            return self._unchanged(pairs=pairs) if pairs is not None else set()
        found = lock_queue(
            self.queue.pk,
            relaxed_commit=True,
            value=(
                f"SELECT coalesce(json_agg(u.id), '[]') FROM ({self._unchanged_sql()}) AS u",  # noqa: S608 (our own statement)
                [pairs, self.connection.pk],
            ),
        )
        return set(orjson.loads(found)) if isinstance(found, str | bytes) else set(found or ())

    def _unchanged(self, hashes: dict[str, str] | None = None, *, pairs: str | None = None) -> set[str]:
        """The ids whose live row was written from the same snapshot (a row changed meanwhile by another
        writer is newer than this snapshot or deleted by a confirmed delete, and skipping this snapshot is
        then right too; the guarded upsert would keep it as well). ``pairs``: _unchanged_pairs already made."""
        pairs = pairs or self._unchanged_pairs(hashes or {})
        if pairs is None:
            return set()
        with db_connection.cursor() as cursor:
            cursor.execute(self._unchanged_sql(), [pairs, self.connection.pk])
            return {row[0] for row in cursor.fetchall()}

    @staticmethod
    def _unchanged_pairs(hashes: dict[str, str]) -> str | None:
        # Plain SQL: the ORM compiles an IN list value by value, which cost more than the mapping it saves. The
        # pairs go as one JSON object {id: hash} that the database unpacks, and only the ids whose stored hash
        # is equal come back: psycopg builds a text[] parameter in Python (1,000 ids: 3.4 ms against 2.7 ms).
        try:
            pairs = orjson.dumps(hashes).decode()
        except TypeError:  # an id orjson cannot encode (a lone surrogate): no row can hold it either
            return None
        # PostgreSQL's text cannot hold U+0000 and SQLite's json_each cuts a string short there: such an id is
        # never taken for unchanged (its record is mapped again; the guarded upsert still writes nothing).
        if "\\u0000" in pairs:
            pairs = orjson.dumps({ext: h for ext, h in hashes.items() if "\x00" not in ext}).decode()
        return pairs

    def _unchanged_sql(self) -> str:
        """The look-up of _unchanged; parameters: the {id: hash} JSON object, the connection's id."""
        meta = self.model._meta
        qn = db_connection.ops.quote_name
        t, conn_col = qn(meta.db_table), qn(meta.get_field("connection").column)
        ext_col, hash_col, deleted_col = qn("external_id"), qn(meta.get_field("sync_hash").column), qn("deleted_at")
        if is_postgres():
            # One unique-index probe per id (LATERAL, LIMIT 1 so it is not flattened into a join): with
            # "external_id = ANY(ids)" a planner that underestimates the connection's rows (a table loaded
            # since its last ANALYZE) scans every row of the connection for every group instead, which
            # made a 300,000-record rescan quadratic (176 s against 46 s for the first sync).
            return (
                f"SELECT k.id FROM json_each_text(%s::json) AS k(id, h), LATERAL (SELECT 1 FROM {t} c "  # noqa: S608
                f"WHERE c.{conn_col} = %s AND c.{ext_col} = k.id AND c.{deleted_col} IS NULL "
                f"AND c.{hash_col} = k.h LIMIT 1) AS r"
            )
        # SQLite: json_each's rows drive probes of the (connection, external id) unique index; CROSS JOIN
        # keeps that order (with a plain JOIN SQLite scanned the connection's rows and json_each for each)
        return (
            f"SELECT c.{ext_col} FROM json_each(%s) AS k CROSS JOIN {t} c ON c.{conn_col} = %s "  # noqa: S608
            f"AND c.{ext_col} = k.key AND c.{deleted_col} IS NULL AND c.{hash_col} = k.value"
        )

    def _map(
        self, record, *, check_deleted: bool = False, check_bounds: bool = True, source: str | None = None
    ) -> tuple[str | None, dict | None, tuple[str, bool] | None]:
        """The one place a record is mapped: (action, values, None), values None for a deletion, or
        (None, None, (error, permanent)). A MappingError is the record's fault (the line fails for good);
        anything else may be our bug (retried with backoff)."""
        try:
            if check_deleted and self.resource.is_deleted(record):
                return LineAction.DELETE, None, None
            values = self.resource.map(record)
            if not isinstance(values, dict):
                raise MappingError("mapper returned no field values")
            if check_bounds:
                self._check_bounds(values)
            values["sync_version"] = self.version_of(record, strict=True)
            values["sync_hash"] = source or self._source_hash(record)
            return LineAction.UPSERT, values, None
        except MappingError as exc:
            return None, None, (f"rejected by mapper: {exc}", True)
        except Exception as exc:  # a mapper bug is still only this line's problem
            return None, None, (f"{exc.__class__.__name__}: {exc}", False)

    def _source_hash(self, record) -> str:
        """The record's source hash (bulk.source_hash), without the fields its resource declares ignored
        (Resource.hash_ignores: never read by its mapper, changed upstream without the record changing)."""
        return bulk.source_hash(record, self._revision, self._hash_ignores)

    def version_of(self, record, *, strict: bool = False) -> str | None:
        """The record's snapshot version (Resource.version), None when it has none. ``strict``: a malformed
        one raises MappingError (the record's line fails); otherwise it counts as none."""
        version = getattr(self.resource, "version", None)
        if version is None or not isinstance(record, dict):
            return None
        try:
            return version(record)
        except MappingError:
            if strict:
                raise
            return None

    def _check_bounds(self, values: dict) -> None:
        """A text value longer than its column fails the record's own line, naming the field, on every
        database (SQLite would store it whole, PostgreSQL would refuse the whole batch first): nothing is
        cut short silently (issue 16)."""
        for name, limit in self._bounds.items():
            value = values.get(name)
            if isinstance(value, str) and len(value) > limit:
                raise MappingError(f"{name} is {len(value)} characters long; at most {limit} fit")

    def _store_inline(self, plan: _Plan) -> tuple[int, tuple[list, Counter]]:
        """Write the group's new records (rows upserted in one write, lines inserted done), insert the
        lines whose mapping failed as after a first failed attempt (failed, or draft with a backoff), and
        hand the rest to lines_add. Inside the group's transaction, under the queue's lock. Returns the
        lines left in draft, and the done lines' inserts and their counts left for the caller's statement
        (lines_insert's ``defer``, then queue_update_with).

        A later sync's plan is resolved here: the look-up of unchanged records rides on the lock statement,
        so the changed records are mapped while this transaction holds the queue's lock (other workers of
        the queue wait that much longer: mapping 2,000 records takes ~20-40 ms, the group's write more)."""
        q = self.queue
        if plan.ready is None:  # a later sync: the lock statement also says which records are unchanged
            self._resolve(plan, self._lock_unchanged(plan.hashes))
        else:
            lock_queue(q.pk, relaxed_commit=True)
        ready, failed, rest = plan.ready, plan.failed, plan.unkeyed
        now = clock.now()
        if self._check_queued and (ready or failed):
            # An id already in the queue (seen on an earlier page, or a resumed run) takes lines_add's
            # path: compare snapshots, reset to draft if newer. Skipped while this fetch inserted every
            # line of the queue itself and met no duplicate (_store_retry turns it back on).
            seen = set(
                SyncQueueLine.objects.filter(queue_id=q.pk, external_id__in=[*ready, *failed]).values_list(
                    "external_id", flat=True
                )
            )
            if seen:
                # New dicts, not pops: a group refused below is written again from the same plan
                # (_store_retry), which must still hold these records.
                rest = rest + [Keyed(_real(ready[ext][0]), ext) for ext in seen if ext in ready]
                rest += [Keyed(failed[ext][0], ext) for ext in seen if ext in failed]
                ready = {ext: planned for ext, planned in ready.items() if ext not in seen}
                failed = {ext: planned for ext, planned in failed.items() if ext not in seen}
        # One write for the group: it is already bounded (fetch_group_records) and is one transaction, and
        # each extra statement costs (measured: chunks of 50 ran at 0.63x the reference, one write 0.77x).
        # SYNC_BATCH_SIZE sizes the claimed batches: retries, webhook deliveries, resumed lines.
        upserts: list = []
        deletes: list = []
        unchanged: list[str] = []
        for ext, (record, _action, values) in ready.items():
            if values is _UNCHANGED:
                unchanged.append(ext)
            elif values is not None:
                upserts.append((_Ref(ext, record), values))
            else:
                deletes.append(_Ref(ext, record))
        upserts = self._shipped_values(upserts, plan)  # before the flags below: it may raise
        self.insert_only = not self._known_rows
        self.encoded_rows = plan.encoded
        try:
            self._write(upserts, deletes, now)
        finally:
            self.insert_only = False
            self.encoded_rows = None
        # Done on the fetch path: nothing will ever need the record again (a retry starts from a draft or
        # failed line, which keeps it), so these lines store no payload (LineBlock).
        written = [ref.external_id for ref, _ in upserts] + unchanged
        blocks = [
            LineBlock(q.pk, written, LineState.DONE, LineAction.UPSERT, 1, now),
            LineBlock(q.pk, [ref.external_id for ref in deletes], LineState.DONE, LineAction.DELETE, 1, now),
        ]
        lines: list[NewLine] = []
        n_retry = 0
        for ext, (record, error, permanent) in failed.items():
            final = permanent or settings.SYNC_MAX_ATTEMPTS <= 1
            lines.append(
                NewLine(
                    queue_id=q.pk,
                    external_id=ext,
                    payload=record,
                    state=LineState.FAILED if final else LineState.DRAFT,
                    attempts=1,
                    last_error=redact(error)[:2000],
                    next_attempt_at=None if final else now + dt.timedelta(seconds=retry_delay(1)),
                    updated_at=now,
                )
            )
            n_retry += not final
        deferred: list = []
        counts = lines_insert(lines, blocks, defer=deferred).get(q.pk, Counter())
        for line in lines:
            if line.state == LineState.FAILED:
                line_failed_record(q, error=line.last_error, external_id=line.external_id, attempts=1)
        return (lines_add(q, self.resource, rest) if rest else 0) + n_retry, (deferred, counts)

    def _shipped_values(self, upserts: list[tuple[_Ref, dict]], plan: _Plan) -> list[tuple[_Ref, dict]]:
        """``upserts`` as the sink needs them. A fetch process sends an upsert's encoded row, not its values
        (_SHIPPED, _unship); the sink sends a first sync's group as those rows (insert_only, every row
        encoded), and for anything else (a refused insert written again as an upsert, a row that could not be
        encoded) the records are mapped again here: mappers are pure, so the values are the child's. Their
        payloads stay _Later (TableSink.write reads an upsert's id and values only). After one refused insert
        the child goes on sending no values, so every later group of the run is mapped again here: the cost of
        a row that appeared during a first sync (a webhook's). The fetch thread's path pays it only for the
        groups it had already planned and let go (_released): it encodes nothing after a refused insert."""
        if not any(values is _SHIPPED for _, values in upserts):
            return upserts
        if not self._known_rows and all(ref.external_id in plan.encoded for ref, _ in upserts):
            return upserts  # written as the child's encoded rows (TableSink.write with insert_only)
        bounds = not is_postgres()
        again = []
        for ref, values in upserts:
            if values is _SHIPPED:
                record = _real(ref.payload)
                action, values, failure = self._map(
                    record, check_deleted=True, check_bounds=bounds, source=plan.hashes[ref.external_id]
                )
                if action != LineAction.UPSERT:  # not what the child found: the group goes the draft way
                    raise RuntimeError(f"{ref.external_id}: mapped differently a second time ({failure})")
            again.append((ref, values))
        return again

    def _check_stall(self, page: Page, keyed: list[Keyed]) -> None:
        """A page identical to the previous one while the token moves on (an upstream ignoring the page
        parameter) would loop forever. Totals are not used here: a resource that splits a query into windows
        (Tiendanube's 10,000 cap) announces per-window totals; each resource bounds its own paging."""
        ids = [k.external_id if k.external_id is not None else repr(k.record)[:100] for k in keyed]
        if page.next_token is not None and ids and ids == self._last_page_ids:
            raise PaginationStalled(
                f"{self.resource.name}: the upstream returned the same page twice; paging is not advancing"
            )
        self._last_page_ids = ids

    # -- processing ----------------------------------------------------------------------------------------
    def process_until_empty(self) -> None:
        while True:
            self.process_available()
            wait = self._next_retry_wait()
            if wait is None:
                return
            if wait > MAX_INLINE_WAIT:
                return  # the reaper resumes the queue when its lines are due
            clock.sleep(wait)

    def _next_retry_wait(self) -> float | None:
        """Seconds until a draft line of ours is due; None when there is none (or the queue was cancelled:
        claims skip cancelled queues, so waiting for their drafts would spin forever)."""
        drafts = SyncQueueLine.objects.filter(queue=self.queue, state=LineState.DRAFT, queue__cancelled_at__isnull=True)
        if not drafts.exists():
            return None
        now = clock.now()
        if drafts.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)).exists():
            return 0.0
        nxt = drafts.aggregate(m=Min("next_attempt_at"))["m"]
        return max((nxt - now).total_seconds(), 0.0)

    def process_available(self) -> int:
        processed = 0
        while True:
            lines = self.claim(self.batch_size)
            if not lines:
                return processed
            self.process_batch(lines)
            processed += len(lines)
            self._report()

    def claim(self, limit: int) -> list[SyncQueueLine]:
        now = clock.now()
        lease_until = now + self.lease
        token = uuid.uuid4().hex
        if self._fetch_lease_until is not None:
            self._renew_fetch_lease()  # processing between pages must not let the fetch lease lapse
        with transaction.atomic():
            lock_queue(self.queue.pk, relaxed_commit=True)  # queue row first, then lines: the one lock order
            qs = (
                SyncQueueLine.objects.filter(
                    queue_id=self.queue.pk, state=LineState.DRAFT, queue__cancelled_at__isnull=True
                )
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .order_by("id")
            )
            if is_postgres():
                qs = qs.select_for_update(skip_locked=True, of=("self",))  # lock lines, not the joined queue
            ids = list(qs.values_list("id", flat=True)[:limit])
            if not ids:
                return []
            # Compare-and-set: on SQLite (no row locks) the state condition is what keeps claims exclusive.
            lines_move(
                self.queue.pk,
                from_state=LineState.DRAFT,
                to_state=LineState.PROCESSING,
                lines=Q(id__in=ids),
                lease_until=lease_until,
                lease_token=token,
                attempts=F("attempts") + 1,
                updated_at=now,
            )
        return list(
            SyncQueueLine.objects.filter(id__in=ids, state=LineState.PROCESSING, lease_token=token).order_by("id")
        )

    def process_batch(self, lines: list[SyncQueueLine]) -> None:
        now = clock.now()
        upserts: list[tuple[SyncQueueLine, dict]] = []
        deletes: list[SyncQueueLine] = []
        failures: list[tuple[SyncQueueLine, str, bool]] = []  # (line, error, permanent)
        for line in lines:
            if line.action == LineAction.DELETE:
                deletes.append(line)
                continue
            _, values, failure = self._map(line.payload)
            if failure is None:
                upserts.append((line, values))
            else:
                failures.append((line, *failure))
        try:
            with transaction.atomic():
                self._write(upserts, deletes, now)
                self._settle_lines([line for line, _ in upserts] + deletes, failures, now)
        except (IntegrityError, DatabaseError, *_VALUE_REFUSED) as exc:
            if not upserts:
                raise
            log.warning(
                "queue %s: batch write failed (%s); isolating the bad row", self.queue.pk, exc.__class__.__name__
            )
            self._process_one_by_one(upserts, deletes, failures, now)

    def _process_one_by_one(self, upserts, deletes, failures, now) -> None:
        ok: list[SyncQueueLine] = []
        for line, values in upserts:
            try:
                with transaction.atomic():
                    self._write([(line, values)], [], now)
                ok.append(line)
            except (OperationalError, InterfaceError):
                # The database went away, not this record: leave the batch to its lease (the reaper
                # returns it) rather than failing every row of it for good.
                raise
            except (IntegrityError, DatabaseError) as exc:
                failures.append((line, f"database rejected the record: {redact(exc)[:500]}", True))
            except ValidationError as exc:  # a value the model field cannot convert: this record's data
                failures.append((line, f"a field rejected the record: {redact(exc)[:500]}", True))
            except (ValueError, TypeError) as exc:  # perhaps our bug, not the data: retried with backoff
                failures.append((line, f"{exc.__class__.__name__}: {redact(exc)[:500]}", False))
        with transaction.atomic():
            self._write([], deletes, now)
            self._settle_lines(ok + deletes, failures, now)

    def _write(self, upserts: list[tuple[SyncQueueLine, dict]], deletes: list[SyncQueueLine], now) -> None:
        self.sink.write(self, upserts, deletes, now)

    def _settle_lines(self, ok: list[SyncQueueLine], failures: list[tuple[SyncQueueLine, str, bool]], now) -> None:
        # Queue row first, then lines (the domain write before this holds no line locks).
        lock_queue(self.queue.pk, relaxed_commit=True)
        # Only lines we still hold (same token): a reaped-and-reclaimed line is not ours to finish.
        held = {"from_state": LineState.PROCESSING, "lease_until": None, "lease_token": "", "updated_at": now}
        by_token: dict = {}
        for line in ok:
            by_token.setdefault(line.lease_token, []).append(line.pk)
        for token, ids in by_token.items():
            lines_move(
                self.queue.pk, to_state=LineState.DONE, lines=Q(id__in=ids, lease_token=token), last_error="", **held
            )
        for line, error, permanent in failures:
            error = redact(error)[:2000]
            mine = Q(pk=line.pk, lease_token=line.lease_token)
            if permanent or line.attempts >= settings.SYNC_MAX_ATTEMPTS:
                if lines_move(self.queue.pk, to_state=LineState.FAILED, lines=mine, last_error=error, **held):
                    line_failed_record(
                        self.queue, error=error, external_id=line.external_id, attempts=line.attempts, line_id=line.pk
                    )
            else:
                delay = retry_delay(line.attempts)
                lines_move(
                    self.queue.pk,
                    to_state=LineState.DRAFT,
                    lines=mine,
                    last_error=error,
                    next_attempt_at=now + dt.timedelta(seconds=delay),
                    **held,
                )

    def _report(self) -> None:
        if self.progress is not None:
            self.queue.refresh_from_db()
            self.progress(self.queue)


# The values of a record whose row already holds its snapshot (_resolve): no write, a done line.
_UNCHANGED: dict = {}

_REVISIONS: dict[type, bytes] = {}


def mapping_revision(resource) -> bytes:
    """What a row's source_hash is keyed with, so that new mapping code rewrites rows mapped by the old:
    the resource's ``mapping_revision`` if it declares one, else a hash of the source of the module that
    defines its class (a deploy that changes the connector's resources rewrites its rows once), as it was
    when the class was created (``Resource.source_digest``: the code this process runs, not what a deploy
    has checked out since; a resource that is not a ``connectors.base.Resource`` has its file read now)."""
    cls = type(resource)
    cached = _REVISIONS.get(cls)
    if cached is None:
        declared = getattr(resource, "mapping_revision", None)
        loaded = getattr(cls, "source_digest", None)
        if declared:
            cached = hashlib.blake2b(
                f"{cls.__module__}.{cls.__qualname__}:{declared}".encode(), digest_size=32
            ).digest()
        elif isinstance(loaded, bytes):
            cached = loaded  # the same digest of the same text as below, taken at import
        else:  # no source at hand (a zipped or frozen module): the class's name
            cached = (
                module_source_digest(cls.__module__)
                or hashlib.blake2b(f"{cls.__module__}.{cls.__qualname__}".encode(), digest_size=32).digest()
            )
        _REVISIONS[cls] = cached
    return cached


class _Ref(NamedTuple):
    """A record the fetcher writes itself, as the sink reads a line: its key and its snapshot."""

    external_id: str
    payload: dict


@dataclass(slots=True)
class _Prepared:
    """A group of pages ready to be written: its keyed records, the inline plan (None: all drafts) and the
    queue fields (token, cursor, pages) saved with it."""

    records: list[Keyed]
    plan: _Plan | None
    updates: dict


class _PagePlan:
    """A page's share of a first sync's plan, made by the fetch thread (QueueRunner._map_early): its ids'
    last snapshots ({external id: record}) with their source hashes, their outcomes (``ready``: (record,
    action, values); ``failed``: (record, error, permanent)), their rows encoded for COPY, the records it
    cannot identify, and the page's cursor. ``keyed``: the page's keyed records it was made from."""

    __slots__ = ("by_id", "cursor", "encoded", "failed", "hashes", "keyed", "ready", "unkeyed")

    def __init__(self, keyed: list[Keyed], cursor) -> None:
        self.keyed, self.cursor = keyed, cursor
        self.by_id: dict[str, dict] = {}
        self.hashes: dict[str, str] = {}
        self.ready: dict[str, tuple] = {}
        self.failed: dict[str, tuple] = {}
        self.encoded: dict[str, bytes] = {}
        self.unkeyed: list[Keyed] = []

    def forget(self, ext: str) -> None:
        """Drop the outcome of an earlier snapshot of ``ext`` in this page (the later one replaces it)."""
        self.ready.pop(ext, None)
        self.failed.pop(ext, None)
        self.encoded.pop(ext, None)


class _Plan:
    """A group's records as the fetcher plans them (QueueRunner._plan_inline): each id's last snapshot and
    its source hash, records mapped in the fetch thread, unidentifiable records; ``ready`` and ``failed``
    once resolved (QueueRunner._resolve; None before)."""

    __slots__ = ("by_id", "encoded", "failed", "hashes", "mapped", "ready", "unkeyed")

    def __init__(
        self, by_id: dict, hashes: dict[str, str], mapped: dict, unkeyed: list[Keyed], encoded: dict[str, bytes]
    ) -> None:
        self.by_id, self.hashes, self.mapped, self.unkeyed = by_id, hashes, mapped, unkeyed
        self.encoded = encoded  # {external id: the row encoded for the sink's COPY} (first sync, _map_early)
        self.ready: dict | None = None
        self.failed: dict | None = None


class _GroupWriter:
    """One thread, with its own database connection, that commits the fetcher's groups one at a time while
    the fetcher prepares the next (psycopg releases the GIL while it waits for PostgreSQL). At most one
    group is in flight: the fetcher waits for it before handing over the next, before processing draft
    lines and before finishing the fetch, so groups still commit in order, each with its own token."""

    def __init__(self, queue_id: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-queue-{queue_id}")

    def submit(self, fn, *args, **kwargs) -> Future:
        return self._pool.submit(fn, *args, **kwargs)

    def close(self, pending: Future | None) -> None:
        if pending is not None:
            with contextlib.suppress(BaseException):
                pending.result()  # never leave a write running behind the caller's back
        with contextlib.suppress(BaseException):
            # A function, not ``db_connection.close``: that would bind the caller's connection here.
            self._pool.submit(_close_thread_connection).result()
        self._pool.shutdown(wait=True)


def _close_thread_connection() -> None:
    db_connection.close()  # resolved in the calling thread: its own connection


def _failure_data(exc: BaseException) -> dict:
    """What a run failure's activity row carries besides the message: the error's family, and the HTTP
    status / advised wait of an upstream error or the stage of a sink error (outcome recorders read these)."""
    # The stack trace (redacted) goes with it: outcome recorders log it (MDM's failure line, seed 004).
    trace = redact("".join(traceback.format_exception(exc)))[-8000:]
    if isinstance(exc, SinkError):
        return {"error_type": exc.error_type, "stage": exc.stage, "stack_trace": trace}
    data: dict = {"error_type": exc.__class__.__name__, "stage": "fetch", "stack_trace": trace}
    if isinstance(exc, UpstreamError):
        if exc.status is not None:
            data["status"] = exc.status
        if exc.wait:
            data["wait"] = exc.wait
    return data


class _PageBuffer:
    """Pages handed from the fetch thread to the fetcher, bounded by records and by pages. A page is always
    let in when nothing waits (so one page larger than the bound still passes). ``put`` never blocks once
    ``stop`` is set (the consumer is gone): it drops the item and returns False."""

    def __init__(self, *, max_records: int, max_pages: int) -> None:
        self._items: collections.deque = collections.deque()
        self._records = 0
        self._max_records, self._max_pages = max_records, max_pages
        self._cond = threading.Condition()

    def put(self, item, size: int, stop: threading.Event) -> bool:
        with self._cond:
            while self._items and (self._records >= self._max_records or len(self._items) >= self._max_pages):
                if stop.is_set():
                    return False
                self._cond.wait(0.05)
            if stop.is_set():
                return False
            self._items.append((item, size))
            self._records += size
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None):
        """The next item; with ``timeout``, None when none came within that many seconds."""
        with self._cond:
            if timeout is None:
                while not self._items:
                    self._cond.wait()
            elif not self._items:
                self._cond.wait_for(lambda: self._items, timeout)
            return self._take() if self._items else None

    def get_nowait(self):
        """The next item, or None when none is waiting."""
        with self._cond:
            return self._take() if self._items else None

    def _take(self):
        item, size = self._items.popleft()
        self._records -= size
        self._cond.notify_all()
        return item


_NOT_KEPT = frozenset({"records", "reload"})  # the Page fields a let-go page (_released) does not copy


def _remade(reload: Callable[[], list], resource, ids: list[str | None], fields: dict) -> LazyPage:
    """A page whose records are made again by ``reload`` when first read, checked (_reload_checked)."""
    return LazyPage(load=functools.partial(_reload_checked, reload, resource, ids), **fields)


def _reload_checked(reload: Callable[[], list], resource, ids: list[str | None]) -> list:
    """A let-go page's records made again (Page.reload), checked against the ids they had (_released's
    _Later indexes must find the same records): another count or id raises ReloadMismatch. Paid only on the
    paths that read a record again."""
    records = reload()
    if not isinstance(records, list) or len(records) != len(ids):
        raise ReloadMismatch(f"{resource.name}: a page made again holds other records than it held")
    for record, ext in zip(records, ids, strict=True):
        if ext is not None and record_key(resource, record).external_id != ext:
            raise ReloadMismatch(f"{resource.name}: a page made again holds other records than it held")
    return records


class _Later:
    """The record at ``index`` of a LazyPage: a KnownPage (not parsed yet), a page a fetch process sent (its
    records packed, _shipped_page, or to be made again by its reload, _travelling) or a page whose records
    were let go (_released, made again by Page.reload): _real reads it."""

    __slots__ = ("index", "page")

    def __init__(self, page: LazyPage, index: int) -> None:
        self.page, self.index = page, index


def _shipped_page(blob: bytes, **fields) -> LazyPage:
    """A page a fetch process sent (QueueRunner._unship): its records stay packed until a path reads them."""
    return LazyPage(load=lambda: _unpacked(blob), **fields)


def _packed(records: list) -> bytes:
    """A page's records as bytes for the parent (_unpacked): marshal where it can (about half of pickle's time
    for a page of WooCommerce customers: 132 against 246 us here, in the fetch process, the longer side of a
    first sync on SQLite), pickle where it refuses (subclasses of its types, datetimes, any other object).
    marshal brings back exactly what a parser gives (dict in key order, list, str, int of any size, float with
    -0.0 and NaN, bool, None) and tuple, set, bytes; it writes a bytearray or memoryview as bytes, which no
    parsed record holds."""
    try:
        return b"m" + marshal.dumps(records)
    except ValueError:
        return b"p" + pickle.dumps(records, pickle.HIGHEST_PROTOCOL)


def _unpacked(blob: bytes) -> list:
    if blob[:1] == b"m":
        return marshal.loads(memoryview(blob)[1:])  # noqa: S302 (our own child's bytes)
    return pickle.loads(memoryview(blob)[1:])  # noqa: S301 (our own child's bytes)


# An upsert's values as a fetch process sends them: not at all (its encoded row is sent; _shipped_values).
_SHIPPED = object()


def _ship(page: Page, keyed: list[Keyed], pp: _PagePlan, resource) -> tuple:
    """What a fetch process sends of a planned page (_PagePlan) for _unship: the page's fields, each record's
    id in order, why those without one have none, the ids mapped to a deletion, those whose mapping failed
    (error, permanent), the source hashes, the encoded rows, and what makes the records again (read only by
    the paths that need a record: a draft or failed line's payload, a deletion's version, a group written
    again): the page's reload where it travels (_travelling: the page's body, with WooCommerce's its keys),
    else the records packed as one blob (_packed). Not the mapped values: the encoded rows stand for them
    (_shipped_values)."""
    meta = (page.next_token, pp.cursor, page.total, page.digest, page.body_digest, page.body_ids)
    ids = [k.external_id for k in keyed]
    key_errors = {i: k.key_error for i, k in enumerate(keyed) if k.external_id is None}
    deleted = [ext for ext, (_, action, _) in pp.ready.items() if action == LineAction.DELETE]
    failed = {ext: (error, permanent) for ext, (_, error, permanent) in pp.failed.items()}
    # A page with records the parent reads at once (_unship: unkeyed, failed, deleted) sends them packed: the
    # parent would otherwise parse the body again on the side this process unloads.
    travelling = None if key_errors or deleted or failed else _travelling(page.reload, resource)
    records = travelling or _packed([_real(k.record) for k in keyed])
    return meta, ids, key_errors, deleted, failed, pp.hashes, pp.encoded, records


_PLAIN_TYPES = frozenset({bytes, str, int, float, bool, type(None)})
_THREAD_SAID = False  # _fetch_process said once why a first sync chosen for a process fetched in a thread


def _travelling(reload, resource) -> tuple[str, tuple] | None:
    """``(name, args)`` when ``resource`` says its reloads travel (Resource.reload_travels: they read nothing
    but their arguments) and a page's Page.reload is one of its own methods over plain values
    (functools.partial, no keywords; bytes, text, numbers, booleans, None, and lists and tuples of those,
    which travel as they are): the parent makes the records again by calling that method on its own resource,
    the very object the child was forked from, and checks them against the ids (_reload_checked). Sending
    those (a WooCommerce page's body, ~90 kB, and its keys) instead of packing the records spares the child,
    the longer side, _packed's ~130 us a page. None otherwise."""
    if getattr(resource, "reload_travels", False) is not True:
        return None
    if type(reload) is not functools.partial or reload.keywords:
        return None
    func, args = reload.func, reload.args
    name = getattr(func, "__name__", None)
    if getattr(func, "__self__", None) is not resource or getattr(resource, name, None) != func:
        return None
    values = list(args)
    while values:
        value = values.pop()
        if type(value) is list or type(value) is tuple:
            values.extend(value)
        elif type(value) not in _PLAIN_TYPES:
            return None
    return name, args


def _real(record):
    """The record itself: a KnownPage's (_Later) is read from its page, which parses its body once."""
    return record.page.records[record.index] if type(record) is _Later else record


def _materialized(records: list[Keyed]) -> list[Keyed]:
    """``records`` with every KnownPage record read (_real): for paths that store payloads (draft lines)."""
    if not any(type(k.record) is _Later for k in records):
        return records
    return [k._replace(record=_real(k.record)) for k in records]


_MEMO_HASH_BYTES = 16  # a source hash is 32 hex digits (bulk.source_hash)
_BODY_CHECK = 8  # a body memo ends with a digest of its key and ids (_body_check)


def _body_check(key: str, ids: bytes) -> bytes:
    """What a body memo's ids end with: a memo cut short, garbled or moved to another key is not used."""
    return hashlib.blake2b(key.encode() + b"\n" + ids, digest_size=_BODY_CHECK).digest()


def _memo_bytes(ids: list[str], page: dict[str, str]) -> bytes | None:
    """A page's memo: the hash of each identified record's id, in the page's order, as raw bytes; None when
    a hash is not 32 hex digits (no memo then: the page is hashed each time)."""
    try:
        blob = b"".join([bytes.fromhex(page[ext]) for ext in ids])
    except (KeyError, ValueError):
        return None
    return blob if len(blob) == _MEMO_HASH_BYTES * len(ids) else None
