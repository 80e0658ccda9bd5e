"""The broker comes from the environment: Redis when Q_REDIS_URL is set, the ORM broker otherwise."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = (
    "import django, json; django.setup(); from django.conf import settings;"
    "from django_q.brokers import get_broker; b = get_broker();"
    "print(json.dumps({'conf': settings.Q_CLUSTER, 'broker': type(b).__name__, 'key': b.list_key}))"
)


def settings_with(**env) -> dict:
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", **env}
    for name in ("Q_REDIS_URL", "Q_CLUSTER_NAME", "DATABASE_URL"):  # settings only: no database needed
        if name not in env:
            full.pop(name, None)
    proc = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_orm_broker_by_default():
    got = settings_with()
    assert got["broker"] == "SkipLockedORM" and got["conf"]["orm"] == "default" and "redis" not in got["conf"]
    assert got["conf"]["broker_class"] == "ops.broker.select"  # django-q2's ORM broker, dequeue aside


def test_redis_broker_when_a_url_is_set_with_timeouts_added():
    got = settings_with(Q_REDIS_URL="redis://:pw@127.0.0.1:6379/2", Q_CLUSTER_NAME="synchub-staging")
    assert got["broker"] == "Redis" and "orm" not in got["conf"] and "broker_class" not in got["conf"]
    assert got["conf"]["redis"] == "redis://:pw@127.0.0.1:6379/2?socket_connect_timeout=5&socket_timeout=10"
    assert got["key"] == "django_q:synchub-staging:q"


def test_redis_url_timeouts_given_are_kept():
    got = settings_with(Q_REDIS_URL="redis://127.0.0.1:6379/0?socket_timeout=3")
    assert got["conf"]["redis"] == "redis://127.0.0.1:6379/0?socket_timeout=3&socket_connect_timeout=5"


@pytest.mark.django_db(transaction=True)
def test_with_redis_the_run_task_is_sent_after_the_commit(monkeypatch, org, make_connection):
    """A worker popping the task before the queue row is committed would find nothing (tasks.run_queue)."""
    from django.db import transaction
    from django_q.conf import Conf

    from sync import services

    sent = []
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(services.runs, "async_task", lambda *args, **kwargs: sent.append(args) or "task-id")
    conn = make_connection(org)
    with transaction.atomic():
        queue = services.sync_start(connection=conn, resource="customers").queue
        assert sent == [], "nothing sent while the queue row is uncommitted"
    assert sent == [("sync.tasks.run_queue", queue.pk)]
