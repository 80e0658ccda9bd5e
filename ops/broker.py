"""django-q2's ORM broker with a dequeue that several clusters do not fight over (PostgreSQL).

django-q2's own dequeue reads ``OrmQ WHERE key AND lock < now LIMIT bulk`` (no ORDER BY) and then takes each row
with a compare-and-set UPDATE. Every cluster reads the same head row, so with two clusters one of them loses
almost every task: its CAS changes nothing, it returns empty-handed and polls again at once, and the two
UPDATEs queue on the same row lock. In B9 two clusters ran 0.67x the tasks/s of one (docs/performance.md).

Here a dequeue is ONE statement, ``UPDATE ... SET lock WHERE id IN (SELECT ... ORDER BY id LIMIT bulk FOR
UPDATE SKIP LOCKED) RETURNING id, payload``: each cluster takes rows no other cluster is taking, oldest first,
in one round trip instead of two. Everything else is django-q2's: the lease (``lock`` = now + ``retry``, so a
task whose worker died is delivered again after ``retry``), the acknowledgement (DELETE), the admin's queued
tasks, the queue size. On SQLite (no row locks) it is django-q2's dequeue unchanged.

Chosen in config/settings.py whenever the ORM broker is: ``Q_CLUSTER["broker_class"] = "ops.broker.select"``.
django-q2 asks ``broker_class`` before anything else, so ``select`` keeps the rest of its choice: while
``Conf.ORM`` names a database this broker, otherwise django-q2's Redis broker (a process whose Conf was switched
to Redis, as the two-qcluster chaos tests do)."""

from __future__ import annotations

from datetime import timedelta
from time import sleep

from django.db import connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ


class SkipLockedORM(ORM):
    def dequeue(self):
        connection = connections[Conf.ORM]
        if connection.vendor != "postgresql":
            return super().dequeue()
        self.get_connection()  # as django-q2's: close a connection past CONN_MAX_AGE (or broken) first
        now = timezone.now()
        table = connection.ops.quote_name(OrmQ._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                # Only the quoted table name is interpolated; values are bound parameters.
                f"UPDATE {table} SET lock = %s WHERE id IN ("  # noqa: S608
                f"SELECT id FROM {table} WHERE key = %s AND lock < %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
                ") RETURNING id, payload",
                [now + timedelta(seconds=Conf.RETRY), self.list_key, now, Conf.BULK],
            )
            tasks = sorted(cursor.fetchall())
        if tasks:
            return tasks
        sleep(Conf.POLL)  # empty queue: spare the CPU, as django-q2's does
        return None


def select(list_key: str | None = None):
    """The ``broker_class`` entry point (django-q2 calls it with ``list_key``)."""
    if Conf.ORM:
        return SkipLockedORM(list_key=list_key)
    from django_q.brokers.redis_broker import Redis

    return Redis(list_key=list_key)
