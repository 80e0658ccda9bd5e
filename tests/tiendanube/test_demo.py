"""The demo's scheduled step: the connect flow's own first sync (already run for the report) must not be
left in the broker, or the cluster runs it first, the store's next sync moves 5 minutes on and no
scheduled run comes within the demo's wait."""

from __future__ import annotations

import pytest
from django.test import Client
from django_q.conf import Conf
from django_q.models import OrmQ

from connectors.models import Connection
from connectors.tiendanube import demo
from sync.connection_runs import run_task_name

from .conftest import oauth_connect

pytestmark = pytest.mark.django_db


def test_the_demo_drops_the_connect_runs_it_already_ran_and_nothing_else(
    staff, org, tn_sandbox, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(Conf, "SYNC", False)  # a real broker queue, as under `make demo`
    tn_sandbox(stores=2)
    client_staff = Client()
    client_staff.force_login(staff)
    conns = []
    for store in ("1001", "1002"):
        with django_capture_on_commit_callbacks(execute=True):
            response, _ = oauth_connect(client_staff, org, store=store)
        assert response.status_code == 200, response.content
        conns.append(Connection.objects.get(kind="tiendanube", external_account_id=store))
    queued = sorted(t.name() for t in OrmQ.objects.all())
    assert queued == sorted(run_task_name(c.pk) for c in conns), "the connect flow enqueues one run per store"

    from django_q.tasks import async_task

    async_task("sync.tasks.reap", task_name="someone-elses-task")
    assert demo.drop_enqueued_runs(conns) == 2
    assert [t.name() for t in OrmQ.objects.all()] == ["someone-elses-task"]
