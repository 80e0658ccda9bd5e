"""Worker liveness (sync.liveness): a banner on every page whose buttons need a worker, when none is alive."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from django.urls import reverse
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage
from django_q.status import Stat, Status

from sync.liveness import worker_status

PAGES = ("admin:sync_dashboard", "admin:customers_loyaltytier_changelist", "admin:mdm_exportrun_changelist")


@pytest.fixture
def with_workers(db, monkeypatch):
    """Tests run django-q2 inline (Q_SYNC); here tasks go to a broker, so a worker must be seen."""
    monkeypatch.setattr(Conf, "SYNC", False)
    cache.clear()
    yield
    cache.clear()


def _cluster_seen(status=None) -> None:
    """What a running qcluster's sentinel does every guard cycle: save its Stat to the cache (3 s expiry)."""
    stat = Status(pid=4242, cluster_id=uuid.uuid4())
    stat.status = status or Conf.IDLE
    get_broker().set_stat(Stat.get_key(stat.cluster_id), SignedPackage.dumps(stat, True), 3)


def test_no_worker_seen_is_not_alive(with_workers):
    status = worker_status()
    assert status.alive is False and status.needs_attention


def test_a_cluster_seen_in_the_cache_is_alive(with_workers):
    _cluster_seen()
    status = worker_status()
    assert status.alive is True and status.clusters == 1 and not status.needs_attention


def test_a_stopping_cluster_is_not_alive(with_workers):
    _cluster_seen(Conf.STOPPING)
    assert worker_status().alive is False


def test_inline_tasks_need_no_worker(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)
    assert worker_status().alive is True and worker_status().inline


def test_a_per_process_cache_cannot_tell(with_workers, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    status = worker_status()
    assert status.alive is None and not status.needs_attention and "LocMemCache" in status.detail


@pytest.mark.parametrize("page", PAGES)
def test_pages_with_run_buttons_say_when_no_worker_is_alive(with_workers, client, superuser, page):
    client.force_login(superuser)
    body = client.get(reverse(page)).content.decode()
    assert 'data-testid="worker-banner"' in body
    assert "No worker is running" in body and "python manage.py qcluster" in body


@pytest.mark.parametrize("page", PAGES)
def test_pages_show_no_banner_while_a_worker_is_alive(with_workers, client, superuser, page):
    _cluster_seen()
    client.force_login(superuser)
    body = client.get(reverse(page)).content.decode()
    assert 'data-testid="worker-banner"' not in body and 'data-testid="worker-alive"' in body


def test_queue_page_says_it_too(with_workers, client, superuser, fake_conn, fake_kind):
    from sync import services

    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    client.force_login(superuser)
    body = client.get(reverse("admin:sync_syncqueue_change", args=[queue.pk])).content.decode()
    assert 'data-testid="worker-banner"' in body
