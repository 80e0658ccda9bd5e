"""Syncing through the real engine against the sandbox: incremental by version, deletions, statuses."""

import pytest

from commerce.models import Product
from connectors.lightspeed.client import pace_delay
from connectors.lightspeed.models import CustomerGroup
from customers.models import Customer
from sync import services, tasks
from sync.models import QueueState, StatusState, SyncQueue, SyncStatus


def _run(conn, resource, **kw):
    result = services.sync_start(connection=conn, resource=resource, enqueue=False, **kw)
    state = tasks.run_queue(result.queue.pk)
    q = SyncQueue.objects.get(pk=result.queue.pk)
    return q, state


def _max_version(sandbox, collection):
    return str(max(r["version"] for r in sandbox.store[collection].values()))


def test_full_sync_of_all_three_resources(ls_conn, sandbox):
    for resource, model, n in (
        ("customers", Customer, 12),
        ("products", Product, 6),
        ("customer_groups", CustomerGroup, 3),
    ):
        q, state = _run(ls_conn, resource)
        assert state == QueueState.DONE, q.last_error
        assert model.objects.filter(connection=ls_conn).count() == n
        status = SyncStatus.objects.get(connection=ls_conn, resource=resource)
        assert status.state == StatusState.SUCCESS
        assert status.cursor == _max_version(sandbox, resource)
    c = Customer.objects.get(external_id=sandbox.make_id("customers", 3))
    src = sandbox.store["customers"][c.external_id]
    assert (c.email, c.customer_code, str(c.loyalty_balance)) == (
        src["email"],
        src["customer_code"],
        src["loyalty_balance"],
    )
    assert c.extra["version"] == str(src["version"])
    p = Product.objects.get(external_id=sandbox.make_id("products", 1))
    assert (p.sku, p.name, p.active, p.extra["supply_price"]) == ("SKU-00001", "Product 001", True, "6.00")
    g = CustomerGroup.objects.get(external_id=sandbox.make_id("customer_groups", 2))
    assert (g.name, g.group_code, g.organization_id) == ("VIP", "G002", ls_conn.organization_id)
    # Paging: pages of 5 by version, then one empty page ends it.
    calls = [c for c in sandbox.api_calls if "/customers?" in c]
    assert len(calls) == 4 and "after" not in calls[0] and "deleted=true" in calls[0]


def test_status_is_syncing_while_the_run_works(ls_conn, sandbox):
    from sync import engine

    seen = []
    result = services.sync_start(connection=ls_conn, resource="customers", enqueue=False)
    engine.run_queue(
        result.queue.pk,
        progress=lambda q: seen.append(SyncStatus.objects.get(connection=ls_conn, resource="customers").state),
        batch_size=5,
    )
    assert seen and set(seen[:-1]) == {StatusState.SYNCING}
    assert SyncStatus.objects.get(connection=ls_conn, resource="customers").state == StatusState.SUCCESS


def test_incremental_run_picks_up_exactly_changed_and_deleted(ls_conn, sandbox):
    first, _ = _run(ls_conn, "customers")
    cursor = SyncStatus.objects.get(connection=ls_conn, resource="customers").cursor
    ids = [sandbox.make_id("customers", i) for i in (2, 5, 9)]
    untouched_synced_at = Customer.objects.get(external_id=ids[2]).synced_at
    sandbox.update("customers", ids[0], email="new@example.com")
    sandbox.delete("customers", ids[1])
    added = sandbox.add("customers", first_name="Zoe")
    sandbox.api_calls.clear()

    q, state = _run(ls_conn, "customers")

    assert state == QueueState.DONE
    assert sorted(q.lines.values_list("external_id", flat=True)) == sorted([ids[0], ids[1], added["id"]])
    assert f"after={cursor}" in sandbox.api_calls[0]
    assert Customer.objects.get(external_id=ids[0]).email == "new@example.com"
    assert Customer.objects.get(external_id=ids[1]).deleted_at is not None
    assert Customer.objects.get(external_id=added["id"]).first_name == "Zoe"
    assert Customer.objects.filter(connection=ls_conn, deleted_at__isnull=True).count() == 12
    assert Customer.objects.get(external_id=ids[2]).synced_at == untouched_synced_at  # not rewritten
    assert SyncStatus.objects.get(connection=ls_conn, resource="customers").cursor == str(added["version"])

    q3, _ = _run(ls_conn, "customers")  # nothing changed: one empty page, nothing written
    assert q3.total_count == 0 and q3.state == QueueState.DONE


def test_bad_record_fails_only_its_line(ls_conn, sandbox):
    bad = sandbox.make_id("products", 2)
    sandbox.update("products", bad, active="yes")
    q, state = _run(ls_conn, "products")
    assert state == QueueState.PARTIAL
    assert q.failed_count == 1 and q.done_count == 5
    assert "active is not a boolean" in q.lines.get(external_id=bad).last_error
    assert SyncStatus.objects.get(connection=ls_conn, resource="products").state == StatusState.FAILED


def test_bad_personal_token_records_failed_and_needs_reauth(org, make_ls_connection, sandbox):
    conn = make_ls_connection(org, credentials={"personal_token": "wrong-token-value"})
    q, state = _run(conn, "customers")
    assert state == QueueState.FAILED
    status = SyncStatus.objects.get(connection=conn, resource="customers")
    assert status.state == StatusState.FAILED and "401" in status.last_error and "invalid_token" in status.last_error
    assert "wrong-token-value" not in status.last_error
    conn.refresh_from_db()
    assert conn.needs_reauth
    assert sandbox.refresh_calls() == 0  # a personal token cannot be refreshed


def test_personal_token_syncs(org, make_ls_connection, sandbox):
    conn = make_ls_connection(org, credentials={"personal_token": "sandbox-personal-token"})
    _, state = _run(conn, "customer_groups")
    assert state == QueueState.DONE and CustomerGroup.objects.filter(connection=conn).count() == 3


def test_unreachable_host_records_failed_and_nothing_raises(org, make_connection, fake_clock):
    conn = make_connection(
        org, kind="lightspeed", base_url="http://127.0.0.1:9/api/2.0/", credentials={"personal_token": "whatever-token"}
    )
    result = services.sync_start(connection=conn, resource="customers")  # django-q2 runs it inline, must not raise
    q = SyncQueue.objects.get(pk=result.queue.pk)
    assert q.state == QueueState.FAILED
    status = SyncStatus.objects.get(connection=conn, resource="customers")
    assert status.state == StatusState.FAILED and "network error" in status.last_error
    assert status.cursor == ""


def test_first_call_server_errors_then_recovers(ls_conn, sandbox, fake_clock):
    sandbox.knobs.server_errors = 2
    _, state = _run(ls_conn, "customer_groups")
    assert state == QueueState.DONE


def test_html_where_json_expected_is_transient(ls_conn, sandbox, fake_clock):
    sandbox.knobs.html_errors = 1
    _, state = _run(ls_conn, "customer_groups")
    assert state == QueueState.DONE


@pytest.mark.parametrize("as_date", [True, False])
def test_429_waits_the_time_asked(ls_conn, sandbox, fake_clock, as_date):
    sandbox.knobs.rate_limited = 1
    sandbox.knobs.retry_after = 7
    sandbox.knobs.retry_after_as_date = as_date
    _, state = _run(ls_conn, "customer_groups")
    assert state == QueueState.DONE
    assert 7.0 in fake_clock.sleeps
    assert CustomerGroup.objects.filter(connection=ls_conn).count() == 3


def test_paces_by_remaining_header(ls_conn, sandbox, fake_clock):
    sandbox.knobs.rate_remaining = 3
    sandbox.knobs.rate_limit = 350
    _, state = _run(ls_conn, "customer_groups")
    assert state == QueueState.DONE
    expected = pace_delay("350", "3")
    assert expected > 0
    assert fake_clock.sleeps.count(expected) == 2  # one page of 3 groups, then the empty page


def test_pace_delay_is_zero_with_room_left():
    assert pace_delay("350", "200") == 0.0
    assert pace_delay(None, None) == 0.0
    assert pace_delay("350", "garbage") == 0.0
    assert pace_delay("350", "0") > pace_delay("350", "5") > 0


def test_server_capping_page_size_still_reaches_the_end(ls_conn, sandbox):
    sandbox.knobs.max_page_size = 2  # fewer than asked: a short page is not the end, an empty one is
    q, state = _run(ls_conn, "customers")
    assert state == QueueState.DONE and q.done_count == 12 and q.pages_fetched == 7


def test_schedule_specs_cover_every_resource_of_active_connections(org, make_ls_connection, monkeypatch):
    from django_q.models import Schedule

    from sync.runpolicy import schedules_register

    conn = make_ls_connection(org)
    make_ls_connection(org, prefix="closed", is_active=False)

    def specs():
        schedules_register()
        return list(Schedule.objects.filter(name__startswith="lightspeed:").order_by("name"))

    assert sorted(s.name for s in specs()) == sorted(
        f"lightspeed:{conn.pk}:{r}" for r in ("customers", "products", "customer_groups")
    )
    assert {s.func for s in specs()} == {"sync.tasks.start_scheduled_sync"} and specs()[0].args.startswith(
        f"{conn.pk}, '"
    )
    monkeypatch.setenv("LIGHTSPEED_SYNC_MINUTES", "0")
    assert specs() == []


def test_a_first_sync_lets_each_pages_records_go_once_encoded(ls_conn, sandbox, settings, monkeypatch):
    """Lightspeed's pages carry a Page.reload (the body parsed again): a first sync hands them to the main thread
    with their records let go (sync.engine's _released), and none is made again on the way."""
    from core.paging import LazyPage
    from sync import engine

    settings.SYNC_FETCH_PROCESS = False  # the fetch thread's path
    pages = []
    real = engine.QueueRunner._prepare_pages
    monkeypatch.setattr(
        engine.QueueRunner, "_prepare_pages", lambda self, group: pages.extend(p for p, _ in group) or real(self, group)
    )
    q, state = _run(ls_conn, "customers")
    assert state == QueueState.DONE, q.last_error
    with_records = [page for page in pages if type(page) is LazyPage]
    assert len(with_records) == 3 and all(page._records is None for page in with_records), [type(p) for p in pages]
    src = sandbox.store["customers"]
    rows = dict(Customer.objects.filter(connection=ls_conn).values_list("external_id", "email"))
    assert rows == {ext: record["email"] for ext, record in src.items()}
