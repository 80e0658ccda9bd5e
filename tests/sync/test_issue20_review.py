"""Independent review of issue 20's hot-path changes (no payload on done fetch-path lines, the source hash and
unchanged records skipped, PostgreSQL's own checks on the fetch path, a first sync COPYed straight in)."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
from django.db import transaction

from connectors.base import Page
from customers.models import Customer
from sync import engine, registry, services
from sync.models import LineState, QueueState, SyncQueueLine
from tests import fakes
from tests.sync.conftest import assert_counters_match


def run(conn, **kw):
    queue = services.sync_start(connection=conn, resource="customers", **kw).queue
    queue.refresh_from_db()
    return queue


@pytest.fixture
def marks_missing(monkeypatch):
    monkeypatch.setattr(fakes.FakeCustomers, "mark_missing_deleted", True)


# --- a record PostgreSQL cannot store is still a record the full scan saw ------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("conn_fixture", ["fake_conn", "claimed_conn"])
def test_a_record_holding_a_nul_is_seen_by_the_full_scan_and_its_row_is_not_marked_deleted(
    conn_fixture, request, org, fake_kind, marks_missing
):
    """A NUL character fails the record's own line (PostgreSQL cannot store it), on a line named apart
    (``unstorable:<random>:<id>``). The record is still upstream: the full scan saw it, so its live row must
    not be marked deleted as missing (invariant 15: deletions never by accident). Since issue 20 the fetch
    path leaves the NUL to PostgreSQL and such a record always takes this way (before, the fetcher failed it
    on a line named by its id, which the scan counted as seen)."""
    conn = request.getfixturevalue(conn_fixture)
    fake_kind.__init__(5)
    assert run(conn, full_scan=True).state == QueueState.DONE
    fake_kind.records[1] = fake_kind.make(2, first_name="bad\x00name", version=20)
    q = run(conn, full_scan=True)
    failed = SyncQueueLine.objects.get(queue=q, state=LineState.FAILED)
    assert failed.external_id.rsplit(":", 1)[-1] == "2" and "NUL" in failed.last_error
    assert q.state == QueueState.PARTIAL
    assert not Customer.objects.filter(connection=conn, deleted_at__isnull=False).exists(), (
        "a record still upstream was marked deleted"
    )
    assert_counters_match(q)


# --- a group written again after a refused first-sync insert keeps every record -------------------------------
def test_a_group_written_again_after_a_refused_plain_insert_keeps_the_records_already_queued(fake_conn, fake_kind, org):
    """A resumed first sync (the queue has lines, the table no rows: ``_check_queued`` on, ``insert_only``
    on): the group's ids already in the queue go lines_add's way, the others are inserted without an upsert
    (bulk.insert_new). A webhook row appearing meanwhile makes the insert fail and the group is written again
    by the upsert. The second try must
    still hold the ids already queued: the newer snapshot of id 1 must reach its line and its row."""
    fake_kind.__init__(0)
    make = fake_kind.make
    q = services.sync_start(connection=fake_conn, resource="customers", enqueue=False).queue
    runner = engine.QueueRunner(q)
    with transaction.atomic():  # what the fetch stored before it was interrupted: id 1, a draft
        services.lines_add(q, runner.resource, [make(1, first_name="Old", version=1)])
    assert runner._take_fetch_lease()
    runner._check_queued, runner._known_rows = True, False  # as fetch() finds them for this queue
    Customer.objects.create(  # a webhook's row, written after the fetch started
        organization=org, connection=fake_conn, external_id="3", email="hook@example.com", sync_version="9" * 30
    )
    runner._store_pages([Page([make(1, first_name="New", version=2), make(2), make(3)], next_token=None)])
    assert SyncQueueLine.objects.get(queue=q, external_id="1").payload["first_name"] == "New"
    runner.process_available()
    rows = Customer.objects.filter(connection=fake_conn)
    assert sorted(rows.values_list("external_id", flat=True)) == ["1", "2", "3"]
    assert rows.get(external_id="1").first_name == "New", "the newer snapshot of id 1 was lost"
    assert rows.get(external_id="3").email == "hook@example.com"
    assert_counters_match(q)


# --- the mapping revision is the revision of the code that maps ----------------------------------------------
_MODULE = """
from connectors.base import Page, Resource
from sync.registry import Connector
from tests.fakes import UPSTREAM, FakeClient


class Customers(Resource):
    name = "customers"
    model = "customers.Customer"
    page_size = 10
    version_field = "version"
    version_kind = "integer"

    def fetch_page(self, ctx):
        return Page(records=[dict(r) for r in UPSTREAM.records], next_token=None)

    def map(self, record):
        return {{"email": record["email"], "first_name": {first_name}}}


connector = Connector(kind="fake", label="Fake", client_class=FakeClient, resources={{"customers": Customers()}})
"""


def test_a_worker_still_running_the_old_mapper_does_not_stamp_rows_with_the_new_code_s_revision(
    fake_kind, fake_conn, tmp_path, monkeypatch
):
    """An upgrade checks the new code out on every host before it restarts the workers (docs/deploy.md,
    "Upgrades"). A worker still running the old mapper must key its rows with the old mapper's revision, not
    with the revision of the source now on disk: otherwise, once restarted, the new mapper takes those rows
    for its own and skips them as unchanged, and they keep the old mapping until the upstream edits them."""
    name = "synchub_revision_probe"
    source = tmp_path / f"{name}.py"
    source.write_text(textwrap.dedent(_MODULE.format(first_name='record["first_name"]')))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module(name)
    monkeypatch.setitem(registry.KINDS, "fake", f"{name}.connector")
    registry.get_connector.cache_clear()
    monkeypatch.setattr(engine, "_REVISIONS", {})
    fake_kind.__init__(3)

    # The new release is checked out (another mapper) while this worker still runs the old one.
    source.write_text(textwrap.dedent(_MODULE.format(first_name='record["first_name"].upper() + "!"')))
    assert run(fake_conn, full_scan=True).state == QueueState.DONE
    assert Customer.objects.get(connection=fake_conn, external_id="1").first_name == "First1"

    # The worker restarts on the new release: every row mapped by the old code is mapped again.
    importlib.reload(module)
    registry.get_connector.cache_clear()
    monkeypatch.setattr(engine, "_REVISIONS", {})
    assert run(fake_conn, full_scan=True).state == QueueState.DONE
    names = set(Customer.objects.filter(connection=fake_conn).values_list("first_name", flat=True))
    assert names == {"FIRST1!", "FIRST2!", "FIRST3!"}, "rows mapped by the old code were skipped as unchanged"
