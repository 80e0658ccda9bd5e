"""Bulk writes for the engine's hot path: COPY on PostgreSQL, Django's bulk_create elsewhere.

Why not bulk_create on PostgreSQL: Django sends a multi-row insert as ``UNNEST(%s::jsonb[], ...)`` and
psycopg builds every array literal in Python (quoting each JSON document with regular expressions); in
the bench profile that was the largest single cost of a sync. COPY streams the same rows through
psycopg's C copy writer. Same rows, same transaction, same constraints; only the wire format differs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from django.db import connection as db_connection
from django.db import models
from django.utils import timezone


def _qn(name: str) -> str:
    return db_connection.ops.quote_name(name)


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    """COPY ``rows`` (already in database form) into ``table``. PostgreSQL only."""
    cols = ", ".join(_qn(c) for c in columns)
    # The raw psycopg cursor's errors are psycopg's own: wrap them into Django's (DataError, IntegrityError,
    # OperationalError...) so callers' except clauses see the same exceptions as for any other query.
    with db_connection.cursor() as cursor, db_connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {_qn(table)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


# Fields whose Python value psycopg already writes as the column expects; everything else (JSON, decimals,
# UUIDs, custom fields) goes through Django's get_db_prep_save, exactly as a save() would.
_AS_IS = (models.CharField, models.TextField, models.BooleanField, models.IntegerField, models.DateTimeField)


@functools.cache
def _layout(model: type[models.Model]):
    """(fields, {name or attname: position}, fields needing get_db_prep_save) for inserting ``model``."""
    meta = model._meta
    fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
    positions: dict[str, int] = {}
    for i, f in enumerate(fields):
        positions[f.attname] = i
        positions[f.name] = i
    prep = [(i, f) for i, f in enumerate(fields) if f.is_relation is False and not isinstance(f, _AS_IS)]
    return fields, positions, prep


def _defaults(fields: list[models.Field]) -> list:
    now = timezone.now()
    return [
        now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default() for f in fields
    ]


def upsert_rows(
    model: type[models.Model],
    rows: list[dict],
    *,
    unique_fields: Sequence[str],
    update_fields: Sequence[str],
) -> None:
    """INSERT ... ON CONFLICT (unique_fields) DO UPDATE SET update_fields. ``rows`` map field names (or
    attnames) to values, missing fields take their defaults, keys must be distinct. Call inside a
    transaction. Rows are written in key order, so two writers upserting overlapping keys take the row
    locks in the same order and cannot deadlock each other."""
    if not rows:
        return
    if db_connection.vendor != "postgresql":
        objs = [model(**row) for row in rows]
        model.objects.bulk_create(objs, update_conflicts=True, unique_fields=unique_fields, update_fields=update_fields)
        return
    meta = model._meta
    fields, positions, prep = _layout(model)
    columns = [f.column for f in fields]
    key_columns = [meta.get_field(name).column for name in unique_fields]
    update_columns = [meta.get_field(name).column for name in update_fields]
    table = meta.db_table
    stage = f"_synchub_stage_{table}"[:63]
    cols = ", ".join(_qn(c) for c in columns)
    # A session-local staging table with the target's column types and no constraints. It is emptied by
    # the same statement that reads it; a rolled-back transaction takes its rows (and, if it was created
    # there, the table itself) with it, hence IF NOT EXISTS every time.
    # Identifiers only, from the model's own meta and quoted; no value is ever formatted into SQL.
    create = f"CREATE TEMP TABLE IF NOT EXISTS {_qn(stage)} AS SELECT {cols} FROM {_qn(table)} WITH NO DATA"  # noqa: S608
    with db_connection.cursor() as cursor:
        cursor.execute(create)
    defaults = _defaults(fields)
    conn = db_connection

    def tuples():
        for row in rows:
            out = list(defaults)
            for key, value in row.items():
                try:
                    position = positions[key]
                except KeyError:
                    raise TypeError(f"{model.__name__} has no field named {key!r}") from None
                if isinstance(value, models.Model):
                    value = value.pk  # a related object given by field name
                out[position] = value
            for position, field in prep:
                out[position] = field.get_db_prep_save(out[position], connection=conn)
            yield tuple(out)

    copy_rows(stage, columns, tuples())
    order = ", ".join(_qn(c) for c in key_columns)
    sets = ", ".join(f"{_qn(c)} = EXCLUDED.{_qn(c)}" for c in update_columns)
    upsert_sql = (
        f"WITH staged AS (DELETE FROM {_qn(stage)} RETURNING {cols}) "  # noqa: S608
        f"INSERT INTO {_qn(table)} ({cols}) SELECT {cols} FROM staged ORDER BY {order} "
        f"ON CONFLICT ({order}) DO UPDATE SET {sets}"
    )
    with db_connection.cursor() as cursor:
        cursor.execute(upsert_sql)
