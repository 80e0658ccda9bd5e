"""Schedules register themselves after `migrate` and when a qcluster starts; `sync_schedules` says what
it changed. The test settings turn auto-registration off (so other tests start with no schedules); these
tests turn it on."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command, get_commands
from django_q.models import Schedule

from ops.models import WorkerHeartbeat

SYSTEM = {"synchub:reaper", "synchub:purge"}


@pytest.fixture
def autoregister(settings, db):
    settings.SYNC_SCHEDULES_AUTOREGISTER = True
    Schedule.objects.all().delete()
    return settings


def rows() -> dict[str, tuple]:
    return {s.name: (s.pk, s.func, s.schedule_type, s.minutes, s.cron, s.repeats) for s in Schedule.objects.all()}


def test_a_bare_migrate_registers_every_schedule_once(autoregister, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="ops.services"):  # the summary line is written, not dropped
        call_command("migrate", verbosity=0)
    (summary,) = [r for r in caplog.records if r.getMessage().startswith("schedules registered after migrate")]
    assert summary.schedules_created >= 2 and summary.event == "schedules.registered"
    first = rows()
    assert SYSTEM <= set(first)
    assert Schedule.objects.count() == len(first), "one row per name"
    call_command("migrate", verbosity=0)
    assert rows() == first, "a second migrate changes nothing (same rows, same ids)"


def test_migrate_registers_nothing_when_turned_off(settings, db):
    settings.SYNC_SCHEDULES_AUTOREGISTER = False
    Schedule.objects.all().delete()
    call_command("migrate", verbosity=0)
    assert not Schedule.objects.exists()


def test_qcluster_registers_schedules_and_a_heartbeat_before_starting(autoregister, monkeypatch):
    import django_q.management.commands.qcluster as upstream

    started = []

    class FakeCluster:
        def start(self):
            # The schedules and the heartbeat exist before django-q2's cluster starts.
            started.append((set(Schedule.objects.values_list("name", flat=True)), WorkerHeartbeat.objects.count()))

        def stop(self):
            pass

    monkeypatch.setattr(upstream, "Cluster", FakeCluster)
    assert get_commands()["qcluster"] == "ops", "ops must come before django_q in INSTALLED_APPS"
    call_command("qcluster", "--run-once")
    ((names, beats),) = started
    assert SYSTEM <= names and beats == 1
    call_command("qcluster", "--run-once")
    assert Schedule.objects.filter(name="synchub:reaper").count() == 1
    assert WorkerHeartbeat.objects.count() == 1, "the same host and pid: one row, refreshed"


def test_qcluster_starts_even_if_a_schedule_is_misconfigured(autoregister, monkeypatch):
    import django_q.management.commands.qcluster as upstream

    started = []
    monkeypatch.setattr(upstream, "Cluster", lambda: type("C", (), {"start": lambda s: started.append(1)})())
    autoregister.INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE = "not a cron"
    call_command("qcluster")
    assert started == [1]


def test_sync_schedules_reports_what_it_changed(autoregister):
    def run() -> str:
        out = io.StringIO()
        call_command("sync_schedules", stdout=out)
        return out.getvalue()

    first = run()
    n = Schedule.objects.count()
    assert f"schedules: {n} created, 0 updated, 0 unchanged, 0 removed" in first
    assert "synchub:reaper: sync.tasks.reap (Minutes) next" in first and "[created]" in first
    assert f"schedules: 0 created, 0 updated, {n} unchanged, 0 removed" in run()

    Schedule.objects.filter(name="synchub:reaper").update(minutes=7)
    reaper = Schedule.objects.get(name="synchub:reaper")
    Schedule.objects.create(name="synchub:purge", func="sync.tasks.purge", schedule_type=Schedule.DAILY)  # a twin
    out = run()
    assert f"schedules: 0 created, 1 updated, {n - 1} unchanged, 1 removed" in out
    assert "synchub:reaper: sync.tasks.reap (Minutes) next" in out and "[updated]" in out
    reaper.refresh_from_db()
    assert reaper.minutes == 1 and Schedule.objects.filter(name="synchub:purge").count() == 1


def test_heartbeat_on_each_finished_task_is_throttled(db, monkeypatch, fake_clock):
    from django_q.signals import post_execute

    from ops import services

    monkeypatch.setitem(services._last_beat, "at", 0.0)
    post_execute.send(sender="django_q", task={"name": "t1"})
    first = WorkerHeartbeat.objects.get().seen_at
    fake_clock.advance(5)
    post_execute.send(sender="django_q", task={"name": "t2"})  # 5 s later: no write
    assert WorkerHeartbeat.objects.get().seen_at == first
    fake_clock.advance(11)
    post_execute.send(sender="django_q", task={"name": "t3"})  # 16 s later: written
    beat = WorkerHeartbeat.objects.get()
    assert (beat.seen_at - first).total_seconds() == 16


def test_a_failing_heartbeat_never_breaks_the_monitor(db, monkeypatch):
    from django_q.signals import post_execute

    from ops import services

    def broken(**kwargs):
        raise RuntimeError("db gone")

    monkeypatch.setattr(services, "heartbeat_record", broken)
    post_execute.send(sender="django_q", task={"name": "t"})  # does not raise
