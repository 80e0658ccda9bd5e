"""/healthz and /readyz over HTTP: what a load balancer sees, including each dependency failing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import OperationalError
from django.test import Client

from core import clock
from ops import health, selectors
from ops.models import WorkerHeartbeat


@pytest.fixture
def beat(db):
    return WorkerHeartbeat.objects.create(worker="host-a:123", seen_at=clock.now())


def test_healthz_answers_without_the_database_and_before_host_and_https_checks(settings):
    # No db fixture: any query would raise. A probe by IP over plain http with the HTTPS redirect on.
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["synchub.example.com"]
    response = Client().get("/healthz", HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    # The same host is refused everywhere else: the exemption is only for the probes.
    assert Client().get("/metrics", HTTP_HOST="10.0.0.7:8000").status_code == 400


def test_healthz_refuses_writes():
    assert Client().post("/healthz").status_code == 405


def test_readyz_ok_when_every_dependency_answers(locmem_cache, beat):
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"database", "cache", "broker", "worker"}
    assert body["checks"]["broker"] == {"ok": True, "broker": "orm", "queue_depth": 0}
    assert body["checks"]["worker"]["clusters"] == 1


def test_readyz_database_down(locmem_cache, beat, monkeypatch):
    class DeadCursor:
        def __enter__(self):
            raise OperationalError('connection to server at "db" failed: password=hunter22')

        def __exit__(self, *exc):
            return False

    class DeadConnection:
        def cursor(self):
            return DeadCursor()

    monkeypatch.setattr(health, "connection", DeadConnection())
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable" and "database" in body["failed"]
    assert body["checks"]["database"] == {"ok": False, "error": "OperationalError"}
    assert "hunter22" not in response.content.decode()


class BrokenCache:
    def set(self, *args, **kwargs):
        raise ConnectionError("redis://:s3cr3tpass@cache:6379 refused")

    get = delete = set


class ForgetfulCache:
    def set(self, *args, **kwargs):
        pass

    def get(self, *args, **kwargs):
        return None

    delete = set


def test_readyz_cache_down(locmem_cache, beat, monkeypatch):
    monkeypatch.setattr(health, "cache", BrokenCache())
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["cache"]
    assert response.json()["checks"]["database"]["ok"] is True
    assert "s3cr3tpass" not in response.content.decode()


def test_readyz_cache_that_loses_writes(locmem_cache, beat, monkeypatch):
    monkeypatch.setattr(health, "cache", ForgetfulCache())
    response = Client().get("/readyz")
    assert response.status_code == 503 and response.json()["failed"] == ["cache"]


def test_readyz_redis_broker_unreachable_hides_its_url(locmem_cache, beat, monkeypatch):
    """The Redis broker pointed at a closed loopback port (with a password in the URL)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", "redis://:brokerpw99@127.0.0.1:9/0?socket_connect_timeout=1")
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 503 and body["failed"] == ["broker"]
    assert body["checks"]["broker"] == {"ok": False, "error": "ConnectionError"}
    assert "brokerpw99" not in response.content.decode()


def test_readyz_stale_or_missing_worker(locmem_cache, db, settings, fake_clock):
    settings.READYZ_WORKER_MAX_AGE_SECONDS = 300
    response = Client().get("/readyz")
    assert response.status_code == 503 and response.json()["failed"] == ["worker"]
    assert "ever reported" in response.json()["checks"]["worker"]["error"]

    WorkerHeartbeat.objects.create(worker="host-a:1", seen_at=fake_clock.now())
    fake_clock.advance(299)
    assert Client().get("/readyz").status_code == 200
    fake_clock.advance(2)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"]["error"] == "no qcluster seen for 301 s (limit 300 s)"


def test_readyz_worker_check_can_be_turned_off(locmem_cache, db, settings):
    settings.READYZ_WORKER_MAX_AGE_SECONDS = 0
    response = Client().get("/readyz")
    assert response.status_code == 200 and response.json()["checks"]["worker"] == {"ok": True, "skipped": True}


def test_heartbeat_summary_counts_recent_clusters(db, fake_clock):
    now = fake_clock.now()
    WorkerHeartbeat.objects.create(worker="a:1", seen_at=now - dt.timedelta(seconds=10))
    WorkerHeartbeat.objects.create(worker="b:2", seen_at=now - dt.timedelta(seconds=1000))
    assert selectors.heartbeat_summary(within_seconds=300) == {"age_seconds": 10.0, "alive": 1}
