"""Queue list/detail/lines/activity and the retry, force-done and cancel actions."""

from __future__ import annotations

import datetime as dt

import pytest

from sync import services
from sync.models import SyncQueue
from tests.fakes import FakeUpstream

from .conftest import assert_error


@pytest.fixture
def partial_queue(fake_conn, fake_kind):
    """A finished run with 3 good lines and 2 that fail mapping (no email): partial, action required."""
    fake_kind.records = [FakeUpstream.make(i) for i in range(1, 4)] + [
        FakeUpstream.make(i, email="") for i in range(4, 6)
    ]
    queue = services.sync_start(connection=fake_conn, resource="customers").queue
    queue.refresh_from_db()
    assert queue.state == "partial" and queue.action_required, (queue.state, queue.last_error)
    return queue


def test_list_is_paginated_and_filterable(api, fake_conn, partial_queue):
    running = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    body = api.get("/api/queues").json()
    assert body["count"] == 2 and [q["id"] for q in body["results"]] == [running.pk, partial_queue.pk]
    page = api.get("/api/queues", {"page_size": 1, "page": 2}).json()
    assert [q["id"] for q in page["results"]] == [partial_queue.pk] and page["previous"]

    def ids(**params):
        r = api.get("/api/queues", params)
        assert r.status_code == 200, r.content
        return [q["id"] for q in r.json()["results"]]

    assert ids(state="partial") == [partial_queue.pk]
    assert ids(state="draft") == [running.pk]
    assert ids(action_required="true") == [partial_queue.pk]
    assert ids(action_required="false") == [running.pk]
    assert ids(connection=fake_conn.pk, resource="customers") == [running.pk, partial_queue.pk]
    assert ids(connection=fake_conn.pk + 1000) == []
    assert ids(resource="products") == []
    assert ids(origin="manual") == [running.pk, partial_queue.pk]
    assert ids(origin="webhook") == []


@pytest.mark.parametrize(
    "params",
    [
        {"state": "bogus"},
        {"connection": "abc"},
        {"connection": "99999999999999999999999"},
        {"connection": "-1"},
        {"action_required": "maybe"},
        {"origin": "x"},
        {"resource": "a\x00b"},
        {"page": "0"},
        {"page": "zz"},
    ],
)
def test_bad_filters_are_4xx_json(api, partial_queue, params):
    r = api.get("/api/queues", params)
    assert r.status_code in (400, 404), r.content
    assert_error(r, r.status_code)


def test_detail_has_progress_and_counts(api, partial_queue):
    body = api.get(f"/api/queues/{partial_queue.pk}").json()
    assert body["state"] == "partial" and body["action_required"] is True
    assert (body["total_count"], body["done_count"], body["failed_count"]) == (5, 3, 2)
    progress = body["progress"]
    # percent counts done records only: 3 of 5 (the 2 failed are their own segment)
    assert progress["total"] == 5 and progress["finished"] == 5 and progress["percent"] == 60
    assert progress["failed"] == 2 and progress["label"] == "60% · partial · 2 failed"
    assert progress["estimated_finish_at"] is None  # finished: nothing to estimate
    assert "email is required" in body["last_error"]
    dt.datetime.fromisoformat(body["created_at"])  # ISO 8601


def test_estimated_finish_comes_from_throughput(api, fake_conn, fake_clock):
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    now = fake_clock.now()
    SyncQueue.objects.filter(pk=queue.pk).update(
        state="processing",
        started_at=now - dt.timedelta(seconds=10),
        total_count=100,
        done_count=15,
        failed_count=5,
        draft_count=80,
        fetch_done=True,
    )
    progress = api.get(f"/api/queues/{queue.pk}").json()["progress"]
    # 20 lines in 10 s = 2 lines/s; 80 left -> 40 s from now.
    assert progress["percent"] == 15 and progress["lines_per_second"] == 2.0  # 15 done of 100
    assert dt.datetime.fromisoformat(progress["estimated_finish_at"]) == now + dt.timedelta(seconds=40)
    assert progress["started_at"] is not None and progress["elapsed_seconds"] == 10.0


def test_lines_paginated_and_filtered_by_state(api, partial_queue):
    body = api.get(f"/api/queues/{partial_queue.pk}/lines").json()
    assert body["count"] == 5
    failed = api.get(f"/api/queues/{partial_queue.pk}/lines", {"state": "failed"}).json()["results"]
    assert sorted(line["external_id"] for line in failed) == ["4", "5"]
    assert all("email is required" in line["last_error"] for line in failed)
    assert api.get(f"/api/queues/{partial_queue.pk}/lines", {"page_size": 2}).json()["next"]
    assert_error(api.get(f"/api/queues/{partial_queue.pk}/lines", {"state": "nope"}), 400, "invalid")


def test_activity_timeline(api, partial_queue):
    events = [a["event"] for a in api.get(f"/api/queues/{partial_queue.pk}/activity").json()["results"]]
    assert events[0] == "queue.created" and "queue.partial" in events and "queue.action_required" in events


def test_retry_requeues_failed_lines(api, partial_queue, fake_kind):
    for rec in fake_kind.records:
        rec["email"] = rec["email"] or f"fixed{rec['id']}@example.com"
    # The retry reuses the stored snapshots, so the lines fail again; what matters is they were re-run.
    r = api.post(f"/api/queues/{partial_queue.pk}/retry")
    assert r.status_code == 200, r.content
    events = [a["event"] for a in api.get(f"/api/queues/{partial_queue.pk}/activity").json()["results"]]
    assert "queue.retry" in events
    assert r.json()["id"] == partial_queue.pk


def test_force_done_then_actions_conflict(api, partial_queue):
    r = api.post(f"/api/queues/{partial_queue.pk}/force-done")
    assert r.status_code == 200, r.content
    assert r.json()["state"] == "done" and r.json()["action_required"] is False
    assert_error(api.post(f"/api/queues/{partial_queue.pk}/force-done"), 409, "invalid_queue_action")
    assert_error(api.post(f"/api/queues/{partial_queue.pk}/retry"), 409, "invalid_queue_action")
    assert_error(api.post(f"/api/queues/{partial_queue.pk}/cancel"), 409, "invalid_queue_action")


def test_cancel_a_pending_run(api, fake_conn):
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    r = api.post(f"/api/queues/{queue.pk}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled" and r.json()["is_active"] is False
    err = assert_error(api.post(f"/api/queues/{queue.pk}/retry"), 409, "invalid_queue_action")
    assert "cancelled" in err["message"]


def test_actions_are_post_only(api, partial_queue):
    assert_error(api.get(f"/api/queues/{partial_queue.pk}/retry"), 405, "method_not_allowed")
    assert_error(api.delete(f"/api/queues/{partial_queue.pk}"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "path",
    [
        "/api/queues/0",
        "/api/queues/-1",
        "/api/queues/abc",
        "/api/queues/99999999999999999999999999",
        "/api/queues/123456789012345678",
    ],
)
def test_bad_or_missing_ids_are_json_404(api, path):
    assert_error(api.get(path), 404, "not_found")
