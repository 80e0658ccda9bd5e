"""Where a line changes state. The only code that moves lines between states and keeps the queue's
counters (total / draft / processing / done / failed / cancelled, and action_required) in step with them.

- ``lines_move``: lines of one queue from one state to another, and the counters, in one statement on
  PostgreSQL (a data-modifying CTE); on SQLite (no DML inside a CTE) two statements in one transaction.
- ``lines_insert``: new lines, a move from "nothing" (COPY on PostgreSQL) plus one counter update per
  queue, whatever the number of lines.
- ``derive_queue_state``: the queue's state from those counters.

Callers hold the queue row's lock (``lock_queue``) in their transaction: the one lock order is the queue
row first, then its lines. tests/sync/test_state_transitions.py fails if a counter is updated anywhere else.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count, F, Q, sql

from core import clock

from ..activity import activity_record
from ..bulk import copy_rows, insert_rows, json_text, payload_text, sqlite_datetime
from ..models import ActivityLevel, LineAction, LineState, QueueState, SyncQueue, SyncQueueLine
from .locks import is_postgres

COUNTER_FIELDS = tuple(f"{state}_count" for state in LineState.values)


def derive_queue_state(
    *,
    draft: int,
    processing: int,
    done: int,
    failed: int,
    cancelled: int,
    fetch_done: bool = True,
    started: bool = False,
    cancelled_by_user: bool = False,
    fetch_failed: bool = False,
) -> QueueState:
    """Queue state from line counts (DESIGN.md invariant 3), plus the run-level facts counts cannot show:
    a fetch still going (processing), a fetch that failed (no line can make the run whole), a cancel."""
    total = draft + processing + done + failed + cancelled
    if processing:
        return QueueState.PROCESSING
    if cancelled_by_user and not draft:
        return QueueState.CANCELLED
    if not fetch_done and not fetch_failed:
        return QueueState.PROCESSING if (started or total) and (started or draft != total) else QueueState.DRAFT
    if total == 0:
        return QueueState.FAILED if fetch_failed else QueueState.DONE
    if draft == total:
        return QueueState.DRAFT
    if draft:
        return QueueState.PROCESSING
    if fetch_failed:
        return QueueState.PARTIAL if done else QueueState.FAILED
    if failed == 0:
        return QueueState.DONE
    if done == 0:
        return QueueState.FAILED
    return QueueState.PARTIAL


# --- Moving lines ---------------------------------------------------------------------------------------
def lines_move(
    queue_id: int,
    *,
    from_state: str | Iterable[str],
    to_state: str,
    lines: Q | None = None,
    **fields,
) -> int:
    """Move the queue's lines that are in ``from_state`` (and match ``lines``) to ``to_state``, setting
    ``fields`` on them (F() expressions allowed), and update the queue's counters by what actually moved.
    A line entering ``failed`` flags the queue action-required; the queue's ``updated_at`` moves when any
    line does. Returns how many lines moved. The state condition is a compare-and-set: a line another
    worker moved meanwhile is not moved (nor counted) twice. Call under the queue's lock (lock_queue)."""
    states = [from_state] if isinstance(from_state, str) else list(from_state)
    return sum(_move(queue_id, str(state), str(to_state), lines, fields) for state in states)


def _deltas(changes: dict[str, int]) -> dict[str, int]:
    """{counter field: delta} for {line state: change in lines}, zero changes left out."""
    return {f"{state}_count": n for state, n in changes.items() if n}


def _move(queue_id: int, from_state: str, to_state: str, lines: Q | None, fields: dict) -> int:
    qs = SyncQueueLine.objects.filter(queue_id=queue_id, state=from_state)
    if lines is not None:
        qs = qs.filter(lines)
    changes = Counter({from_state: -1})
    changes[to_state] += 1
    per_line = _deltas(changes)  # empty when the line stays in its state (a draft line's newer snapshot)
    flag = to_state == LineState.FAILED
    now = clock.now()
    if is_postgres():
        return _move_one_statement(qs, queue_id, to_state, fields, per_line, flag, now)
    with transaction.atomic(savepoint=False):  # SQLite: an IMMEDIATE transaction is the queue's lock
        n = qs.update(state=to_state, **fields)
        if n:
            changes: dict = {name: F(name) + d * n for name, d in per_line.items()}
            if flag:
                changes["action_required"] = True
            _counters_add(queue_id, changes, now=now)
    return n


def _move_one_statement(qs, queue_id: int, to_state: str, fields: dict, per_line: dict, flag: bool, now) -> int:
    """WITH moved AS (UPDATE lines ... RETURNING 1) UPDATE the queue's counters by count(moved): the lines
    and their counters change together or not at all, in one round trip."""
    query = qs.query.chain(sql.UpdateQuery)
    query.add_update_values({"state": to_state, **fields})
    line_sql, line_params = query.get_compiler(qs.db).as_sql()
    qn = db_connection.ops.quote_name
    table = qn(SyncQueue._meta.db_table)
    # Identifiers come from the model's fields and the deltas are ints: no value is formatted into the SQL.
    sets = [f"{qn(name)} = {qn(name)} + ({int(d)} * m.n)" for name, d in per_line.items()]
    sets.append(f"{qn('updated_at')} = %s")
    if flag:
        sets.append(f"{qn('action_required')} = true")
    statement = (
        f"WITH moved AS ({line_sql} RETURNING 1), m AS (SELECT count(*) AS n FROM moved) "  # noqa: S608
        f"UPDATE {table} SET {', '.join(sets)} FROM m WHERE {table}.{qn('id')} = %s AND m.n > 0 RETURNING m.n"
    )
    with db_connection.cursor() as cursor:
        cursor.execute(statement, [*line_params, now, queue_id])
        row = cursor.fetchone()
    return row[0] if row else 0


def queue_update_with(queryset, values: dict, statements: list[tuple[str, list]], counts: Counter) -> int:
    """``queryset.update(**values)`` (a queryset of SyncQueue) that also counts ``counts`` (state -> new
    lines, as lines_insert(defer=...) returned them) into the queue's counters, with ``statements`` (that
    call's deferred INSERTs, PostgreSQL only) run as data-modifying CTEs of the same statement: one round
    trip. Returns the rows the UPDATE changed; the inserts happen whatever that count (the caller's
    transaction decides: a caller that finds 0 raises and rolls back)."""
    values = {**values, **counter_changes(counts)}
    if not statements:
        return queryset.update(**values)
    query = queryset.query.chain(sql.UpdateQuery)
    query.add_update_values(values)
    update_sql, update_params = query.get_compiler(queryset.db).as_sql()
    ctes = ", ".join(f"l{i} AS ({text})" for i, (text, _) in enumerate(statements))
    params = [p for _, block_params in statements for p in block_params]
    with db_connection.cursor() as cursor:
        cursor.execute(f"WITH {ctes} {update_sql}", [*params, *update_params])
        return cursor.rowcount


def _counters_add(queue_id: int, changes: dict, *, now: dt.datetime) -> None:
    SyncQueue.objects.filter(pk=queue_id).update(**changes, updated_at=now)


# --- New lines (a move from "nothing") ------------------------------------------------------------------------
@dataclass(slots=True)
class NewLine:
    """A line to insert with lines_insert: the fields a new line sets, without a model instance's cost."""

    queue_id: int
    external_id: str
    payload: dict
    state: str = LineState.DRAFT
    action: str = LineAction.UPSERT
    attempts: int = 0
    next_attempt_at: dt.datetime | None = None
    last_error: str = ""
    updated_at: dt.datetime | None = None


@dataclass(slots=True)
class LineBlock:
    """Many new lines of one queue that differ only in their external id: the lines the fetcher writes
    done itself. They keep no payload (``{}``): nothing will read the record again, since a retry starts
    from a draft or failed line, which keeps its record; a re-read of the same id within the run is
    processed again and the guarded upsert makes an unchanged snapshot write nothing."""

    queue_id: int
    external_ids: list[str]
    state: str
    action: str
    attempts: int
    updated_at: dt.datetime

    def rows(self, sqlite: bool) -> Iterable[tuple]:
        q, action, state, attempts = self.queue_id, str(self.action), str(self.state), self.attempts
        at = self._at(sqlite)
        return ((q, ext, action, "{}", state, attempts, None, "", "", at) for ext in self.external_ids)

    def _at(self, sqlite: bool) -> str:
        # Text once for the block (psycopg's datetime dumper costs ~4 us a value; sync/bulk.py).
        return sqlite_datetime(self.updated_at) if sqlite else self.updated_at.isoformat()

    def insert(self) -> None:
        """Insert the block's lines with one statement: the ids go as one JSON array, which the database
        unpacks (json_array_elements_text on PostgreSQL, json_each on SQLite), and every other value once.
        Measured for 1,000 ids: PostgreSQL 6.3 ms and 0.23 ms of our CPU against 8.5-10 ms and 1.6 ms for a
        COPY of 1,000 tuples; SQLite 2.3 ms against 9.4 ms for executemany, which also hands the GIL back
        and forth once per row. Ids orjson cannot encode (lone surrogates) take the row-by-row way, and fail
        there as before; so do ids holding U+0000, which SQLite's json_each would cut short there (PostgreSQL
        refuses them either way)."""
        statement = self.statement()
        if statement is None:
            rows = self.rows(not is_postgres())
            if is_postgres():
                copy_rows(SyncQueueLine._meta.db_table, _LINE_COLUMNS, rows)
            else:
                insert_rows(SyncQueueLine._meta.db_table, _LINE_COLUMNS, rows)
            return
        with db_connection.cursor() as cursor:
            cursor.execute(*statement)

    def statement(self) -> tuple[str, list] | None:
        """The one INSERT of ``insert`` as (sql, params), or None for ids it cannot carry (see insert)."""
        try:
            ids = orjson.dumps(self.external_ids).decode()
        except TypeError:
            return None
        if "\\u0000" in ids:
            return None
        qn = db_connection.ops.quote_name
        each = "json_array_elements_text(%s::json) AS k(id)" if is_postgres() else "json_each(%s) AS k"
        sql_text = (
            f"INSERT INTO {qn(SyncQueueLine._meta.db_table)} ({', '.join(qn(c) for c in _LINE_COLUMNS)}) "  # noqa: S608
            f"SELECT %s, {'k.id' if is_postgres() else 'k.value'}, %s, '{{}}', %s, %s, NULL, '', '', %s FROM {each}"
        )
        params = [self.queue_id, str(self.action), str(self.state), self.attempts, self._at(not is_postgres()), ids]
        return sql_text, params


_LINE_COLUMNS = (
    "queue_id",
    "external_id",
    "action",
    "payload",
    "state",
    "attempts",
    "next_attempt_at",
    "lease_token",
    "last_error",
    "updated_at",
)


def lines_insert(
    lines: list[NewLine] | list[SyncQueueLine], blocks: list[LineBlock] = (), *, defer: list | None = None
) -> dict[int, Counter]:
    """Insert new lines as they are (state, attempts, error, backoff) and count them into their queues'
    counters: one insert (COPY on PostgreSQL, see sync/bulk.py for why) and one counter update per queue,
    in one transaction. ``blocks`` add lines given as LineBlocks. Call under the queues' locks. Returns
    {queue id: Counter(state: lines)}.

    ``defer`` (a list): the blocks' statements (PostgreSQL) are appended to it instead of being run, and no
    counter is updated: the caller hands them and the returned counts to queue_update_with in the same
    transaction (the engine's fetcher: one round trip per group instead of three)."""
    blocks = [b for b in blocks if b.external_ids]
    if not lines and not blocks:
        return {}
    per_queue: dict[int, Counter] = {}
    for line in lines:
        per_queue.setdefault(line.queue_id, Counter())[str(line.state)] += 1
    for block in blocks:
        per_queue.setdefault(block.queue_id, Counter())[str(block.state)] += len(block.external_ids)
    with transaction.atomic(savepoint=False):
        if defer is not None and is_postgres():
            statements = [block.statement() for block in blocks]
            defer.extend(st for st in statements if st is not None)
            blocks = [block for block, st in zip(blocks, statements, strict=True) if st is None]
        _insert(lines, blocks)
        if defer is not None:
            return per_queue
        now = clock.now()
        for queue_id, counts in per_queue.items():
            _counters_add(queue_id, counter_changes(counts), now=now)
    return per_queue


def counter_changes(counts: Counter) -> dict:
    """The queue field changes that count new lines (``counts``: state -> lines) into its counters."""
    changes: dict = {
        name: F(name) + d for name, d in {"total_count": sum(counts.values()), **_deltas(counts)}.items() if d
    }
    if counts[LineState.FAILED]:
        changes["action_required"] = True
    return changes


def _insert(lines, blocks: list[LineBlock] = ()) -> None:
    for block in blocks:
        block.insert()
    if not lines:
        return
    if not is_postgres():
        # executemany, not bulk_create: no model instance per line, no per-value compilation in Python.
        rows = [
            (
                line.queue_id,
                line.external_id,
                str(line.action),
                json_text(line.payload),
                str(line.state),
                line.attempts,
                sqlite_datetime(line.next_attempt_at),
                "",
                line.last_error,
                sqlite_datetime(line.updated_at),
            )
            for line in lines
        ]
        insert_rows(SyncQueueLine._meta.db_table, _LINE_COLUMNS, rows)
        return
    rows = (
        (
            line.queue_id,
            line.external_id,
            str(line.action),
            payload_text(line.payload),
            str(line.state),
            line.attempts,
            line.next_attempt_at,
            "",
            line.last_error,
            line.updated_at,
        )
        for line in lines
    )
    copy_rows(SyncQueueLine._meta.db_table, _LINE_COLUMNS, rows)


# --- Repair and the failed-line record ----------------------------------------------------------------------
def queue_recount(queue: SyncQueue) -> dict[str, int]:
    """Recompute the per-state counters from the lines. The transitions above keep them exact; this is the
    check (and repair) for rows written before them or by hand."""
    with transaction.atomic():
        SyncQueue.objects.select_for_update().filter(pk=queue.pk).values_list("id", flat=True).first()
        counts = {s: 0 for s in LineState.values}
        for row in SyncQueueLine.objects.filter(queue=queue).values("state").annotate(n=Count("id")):
            counts[row["state"]] = row["n"]
        SyncQueue.objects.filter(pk=queue.pk).update(
            total_count=sum(counts.values()), **{f"{state}_count": n for state, n in counts.items()}
        )
    return counts


def line_failed_record(
    queue: SyncQueue, *, error: str, external_id: str = "", attempts: int | None = None, line_id: int | None = None
) -> None:
    """The activity row for a line that ended failed (every path: fetch, batch, reaper, webhook lane)."""
    data: dict = {}
    if attempts is not None:
        data["attempts"] = attempts
    if external_id:
        data["external_id"] = external_id
    activity_record(
        event="line.failed",
        queue=queue,
        line=SyncQueueLine(pk=line_id, queue_id=queue.pk) if line_id else None,
        level=ActivityLevel.ERROR,
        message=f"{external_id}: {error}" if external_id else error,
        data=data,
    )
