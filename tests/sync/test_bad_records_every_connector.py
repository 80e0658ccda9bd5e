"""Issue 16: on every connector, a record that cannot be identified, one the mapper refuses and one with a
value longer than its column each fail their own line, naming the cause; the rest of the page lands."""

from __future__ import annotations

import pytest
from django.apps import apps

from core.paging import Page
from sync import engine
from sync.models import LineState, SyncQueue, SyncQueueLine
from sync.registry import get_resource

T = "2024-05-01T10:00:00+00:00"
CASES = {
    # kind, resource: (a good record, one without an id, one its mapper refuses, one with an over-long field)
    ("woocommerce", "products"): (
        {"id": 1, "name": "Mug", "sku": "M-1", "status": "publish", "date_modified_gmt": "2024-05-01T10:00:00"},
        {"name": "no id", "date_modified_gmt": "2024-05-01T10:00:00"},
        {"id": 3, "name": "", "date_modified_gmt": "2024-05-01T10:00:00"},
        {"id": 4, "name": "Long sku", "sku": "S" * 300, "date_modified_gmt": "2024-05-01T10:00:00"},
        "sku",
    ),
    ("lightspeed", "customers"): (
        {"id": "c1", "version": 7, "first_name": "Ana", "email": "ana@example.com"},
        {"version": 8, "first_name": "no id"},
        {"id": "c3", "version": 9, "loyalty_balance": "lots"},
        {"id": "c4", "version": 10, "customer_code": "C" * 300},
        "customer_code",
    ),
    ("tiendanube", "orders"): (
        {"id": 1, "number": 101, "status": "open", "currency": "ARS", "total": "10.00", "updated_at": T},
        {"number": 102, "updated_at": T},
        {"id": 3, "number": 103, "total": "ten", "updated_at": T},
        {"id": 4, "number": 104, "currency": "X" * 20, "updated_at": T},
        "currency",
    ),
    ("mulesoft", "loyalty_tiers"): (
        {"id": "gold", "code": "GOLD", "name": "Gold", "rank": 2},
        {"name": "no id nor code"},
        {"id": "bronze", "name": ""},
        {"id": "long", "code": "L" * 100, "name": "Long code"},
        "code",
    ),
    ("mdm", "ineligible_items"): (
        {"sku": "SKU-1", "reason": "recalled", "market": "AR"},
        {"reason": "no sku"},
        None,  # the MDM mapper refuses nothing but an unidentifiable item
        {"sku": "SKU-4", "market": "M" * 100},
        "market",
    ),
}


@pytest.mark.parametrize("kind,resource", list(CASES), ids=[k for k, _ in CASES])
def test_a_bad_record_fails_only_its_own_line(kind, resource, org, make_connection):
    good, no_id, refused, too_long, long_field = CASES[(kind, resource)]
    conn = make_connection(org, kind=kind, external_account_id=f"{kind}-1")
    queue = SyncQueue.objects.create(organization=org, connection=conn, resource=resource, full_scan=True)
    runner = engine.QueueRunner(queue)
    assert runner._take_fetch_lease()
    records = [good, no_id, *([refused] if refused else []), too_long]
    # On PostgreSQL the fetcher leaves the checks the database makes (length, NUL) to it: a refused group
    # is stored as draft lines and the claimed path, which the run goes on to, isolates the bad record.
    if runner._store_pages([Page(records, next_token=None)]):
        runner.process_available()
    model = apps.get_model(get_resource(kind, resource).model)
    assert list(model.objects.filter(connection=conn).values_list("external_id", flat=True)) == [
        get_resource(kind, resource).external_id(good)
    ]
    failed = {line.external_id: line.last_error for line in SyncQueueLine.objects.filter(queue=queue)}
    assert all(
        line.state == LineState.FAILED
        for line in SyncQueueLine.objects.filter(queue=queue).exclude(
            external_id=get_resource(kind, resource).external_id(good)
        )
    )
    assert len(failed) == len(records)
    assert any(ext.startswith("invalid:") and "cannot identify record" in err for ext, err in failed.items())
    # Named, never cut short (the engine's column check, or the connector's own).
    assert any(err.startswith(f"rejected by mapper: {long_field} is ") for err in failed.values()), failed
    queue.refresh_from_db()
    assert queue.failed_count == len(records) - 1 and queue.done_count == 1


NOT_FINITE = {
    # kind, resource: (a good record, a record whose amount is not a finite number, the amount's name)
    ("woocommerce", "orders"): (
        {
            "id": 1,
            "number": "101",
            "status": "processing",
            "total": "10.00",
            "date_modified_gmt": "2024-05-01T10:00:00",
        },
        {"id": 2, "number": "102", "status": "processing", "total": "NaN", "date_modified_gmt": "2024-05-01T10:00:00"},
        "total",
    ),
    ("tiendanube", "orders"): (
        {"id": 1, "number": 101, "status": "open", "currency": "ARS", "total": "10.00", "updated_at": T},
        {"id": 2, "number": 102, "status": "open", "currency": "ARS", "total": "Infinity", "updated_at": T},
        None,
    ),
}


@pytest.mark.parametrize("kind,resource", list(NOT_FINITE), ids=[k for k, _ in NOT_FINITE])
def test_an_amount_that_is_not_a_finite_number_fails_its_line_named_by_the_mapper(kind, resource, org, make_connection):
    """ "NaN" parses as a Decimal; stored, it would be a price no shop has. The mapper refuses it, before the
    write (on PostgreSQL a NaN Decimal would otherwise reach the binary COPY's rules)."""
    good, bad, field = NOT_FINITE[(kind, resource)]
    conn = make_connection(org, kind=kind, external_account_id=f"{kind}-nan")
    queue = SyncQueue.objects.create(organization=org, connection=conn, resource=resource, full_scan=True)
    runner = engine.QueueRunner(queue)
    assert runner._take_fetch_lease()
    if runner._store_pages([Page([good, bad], next_token=None)]):
        runner.process_available()
    model = apps.get_model(get_resource(kind, resource).model)
    assert list(model.objects.filter(connection=conn).values_list("external_id", flat=True)) == ["1"]
    line = SyncQueueLine.objects.get(queue=queue, external_id="2")
    assert line.state == LineState.FAILED
    assert line.last_error.startswith("rejected by mapper: "), line.last_error
    assert "finite number" in line.last_error and (field is None or field in line.last_error), line.last_error
