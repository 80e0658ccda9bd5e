from django.urls import reverse

from sync import services
from sync.models import SyncActivity, SyncQueue, SyncQueueLine

CHANGELIST = "admin:sync_syncqueue_changelist"


def _action(client, name, queues, confirm: bool):
    data = {"action": f"queues_{name}", "_selected_action": [q.pk for q in queues]}
    if confirm:
        data["post"] = "yes"
    return client.post(reverse(CHANGELIST), data, follow=confirm)


def test_changelist_shows_progress_state_origin_and_action_marker(staff_client, partial_queue):
    body = staff_client.get(reverse(CHANGELIST)).content.decode()
    assert f"#{partial_queue.pk}" in body
    # done / failed / cancelled / total in the bar's title; the label says "partial" and "2 failed" in words
    assert "sh-progress" in body and "3 done / 2 failed / 0 cancelled / 5 total" in body
    assert "60% · partial · 2 failed" in body
    assert "action required" in body and "Partial" in body and "Manual" in body


def test_filters_and_search(staff_client, partial_queue, fake_conn, fake_kind):
    fake_kind.__init__(2)
    services.sync_start(connection=fake_conn, resource="customers", idempotency_key="nightly-42", full_scan=True)
    url = reverse(CHANGELIST)
    assert f"#{partial_queue.pk}<" in staff_client.get(url, {"action_required": "1"}).content.decode()
    only_done = staff_client.get(url, {"state": "done"}).content.decode()
    assert f"#{partial_queue.pk}<" not in only_done
    keyed = SyncQueue.objects.get(idempotency_key="nightly-42")
    by_key = staff_client.get(url, {"q": "nightly"}).content.decode()
    assert f"#{keyed.pk}<" in by_key and f"#{partial_queue.pk}<" not in by_key
    by_line = staff_client.get(url, {"q": "4"}).content.decode()  # record id 4 is a line of the partial queue
    assert f"#{partial_queue.pk}<" in by_line
    for params in ({"origin": "manual"}, {"resource": "customers"}, {"conn": fake_conn.pk}, {"conn": "Acme"}):
        assert staff_client.get(url, params).status_code == 200


def test_bulk_retry_asks_for_confirmation_then_records_the_actor(staff_client, staff, partial_queue):
    response = _action(staff_client, "retry", [partial_queue], confirm=False)
    assert response.status_code == 200 and 'data-testid="confirm-page"' in response.content.decode()
    assert not SyncActivity.objects.filter(event="queue.retry").exists()
    response = _action(staff_client, "retry", [partial_queue], confirm=True)
    assert response.status_code == 200 and "1 queue(s) retried" in response.content.decode()
    assert SyncActivity.objects.get(event="queue.retry", queue=partial_queue).actor == staff


def test_bulk_force_done_and_cancel(staff_client, staff, partial_queue, fake_conn):
    _action(staff_client, "force_done", [partial_queue], confirm=True)
    partial_queue.refresh_from_db()
    assert partial_queue.state == "done" and not partial_queue.action_required
    assert SyncActivity.objects.get(event="queue.force_done").actor == staff
    draft = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    _action(staff_client, "cancel", [draft], confirm=True)
    draft.refresh_from_db()
    assert draft.state == "cancelled"
    assert SyncActivity.objects.filter(event="queue.cancelled", queue=draft, actor=staff).exists()


def test_service_errors_become_messages_not_500(staff_client, partial_queue):
    services.queue_force_done(queue=partial_queue)
    response = _action(staff_client, "retry", [partial_queue], confirm=True)
    assert response.status_code == 200
    # the queue the retry cannot apply to is skipped and named, never a 500
    assert (
        f"Skipped 1 queue(s) this does not apply to: #{partial_queue.pk} (nothing failed)" in response.content.decode()
    )


def test_queue_page_counts_lines_timeline_and_banner(staff_client, partial_queue):
    url = reverse("admin:sync_syncqueue_change", args=[partial_queue.pk])
    body = staff_client.get(url).content.decode()
    assert 'data-testid="action-required-banner"' in body
    assert 'data-testid="retry"' in body and 'data-testid="force-done"' in body
    assert "email is required" in body  # the failed lines' last error
    assert "queue.created" in body and "queue.action_required" in body  # the timeline
    failed_only = staff_client.get(url, {"lines_state": "failed"}).content.decode()
    assert failed_only.count('sh-badge sh-failed">Failed') == 2


def test_queue_page_paginates_lines(staff_client, fake_conn, fake_kind):
    fake_kind.__init__(120)
    queue = services.sync_start(connection=fake_conn, resource="customers").queue
    url = reverse("admin:sync_syncqueue_change", args=[queue.pk])
    body = staff_client.get(url).content.decode()
    assert "page 1 of 3" in body and 'data-testid="lines-next"' in body
    assert "page 3 of 3" in staff_client.get(url, {"lines_page": 3}).content.decode()


def test_force_done_is_hidden_while_processing(staff_client, fake_conn):
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    SyncQueue.objects.filter(pk=queue.pk).update(state="processing")
    body = staff_client.get(reverse("admin:sync_syncqueue_change", args=[queue.pk])).content.decode()
    assert 'data-testid="force-done"' not in body and 'data-testid="cancel"' in body


def test_single_queue_action_confirm_then_run(staff_client, staff, partial_queue):
    url = reverse("admin:sync_syncqueue_action", args=[partial_queue.pk, "force_done"])
    assert 'data-testid="confirm-page"' in staff_client.get(url).content.decode()
    partial_queue.refresh_from_db()
    assert partial_queue.state == "partial"
    response = staff_client.post(url)
    assert response.status_code == 302
    partial_queue.refresh_from_db()
    assert partial_queue.state == "done"


def test_progress_json(staff_client, fake_conn, fake_kind):
    queue = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    SyncQueue.objects.filter(pk=queue.pk).update(
        state="processing", total_count=10, done_count=3, failed_count=1, expected_total=20, draft_count=6
    )
    data = staff_client.get(reverse("admin:sync_syncqueue_progress", args=[queue.pk])).json()
    # percent = done of the announced 20 (failed lines are not progress)
    assert data["running"] and data["percent"] == 15 and data["done"] == 3 and data["failed"] == 1
    services.queue_cancel(queue=queue)
    data = staff_client.get(reverse("admin:sync_syncqueue_progress", args=[queue.pk])).json()
    # a cancelled run is not 100%: what it never did shows as cancelled
    assert not data["running"] and data["percent"] < 100 and data["state"] == "cancelled"
    assert data["cancelled_pct"] > 0 and "cancelled" in data["label"]


def test_changelist_of_100_queues_runs_constant_queries(
    staff_client, org, make_connection, fake_kind, django_assert_max_num_queries
):
    conns = [make_connection(org, kind="fake", name=f"shop {i}") for i in range(4)]
    SyncQueue.objects.bulk_create(
        SyncQueue(
            organization=org,
            connection=conns[i % 4],
            resource=f"r{i}",
            is_active=False,
            state="done",
            total_count=10,
            done_count=10,
        )
        for i in range(100)
    )
    with django_assert_max_num_queries(10):  # 9 today: session, user, memberships, filters, count, page
        response = staff_client.get(reverse(CHANGELIST))
    assert response.content.decode().count('class="sh-progress"') == 100


def test_line_search_uses_the_exact_external_id(staff_client, partial_queue):
    assert SyncQueueLine.objects.filter(queue=partial_queue, external_id="2").exists()
    body = staff_client.get(reverse(CHANGELIST), {"q": "no-such-line"}).content.decode()
    assert f"#{partial_queue.pk}<" not in body
