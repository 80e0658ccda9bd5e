import pytest

from sync import registry
from tests import fakes


@pytest.fixture
def fake_kind(monkeypatch):
    monkeypatch.setitem(registry.KINDS, "fake", "tests.fakes.connector")
    registry.get_connector.cache_clear()
    fakes.UPSTREAM.__init__(0)
    yield fakes.UPSTREAM
    registry.get_connector.cache_clear()


@pytest.fixture
def fake_conn(org, make_connection, fake_kind):
    return make_connection(org, kind="fake", credentials={"token": "s3cr3t-token-value"})


@pytest.fixture
def claimed_conn(org, make_connection, fake_kind):
    """A fake connection whose fetcher leaves every record a draft line (``process_on_fetch`` off), for
    tests of the claimed-batch path: claims, leases, the reaper."""
    return make_connection(
        org, kind="fake", credentials={"token": "s3cr3t-token-value"}, config={"process_on_fetch": False}
    )


def assert_counters_match(queue) -> None:
    """The per-state counters on the queue row equal a fresh count of its lines (no drift)."""
    from django.db.models import Count

    from sync.models import SyncQueueLine

    queue.refresh_from_db()
    actual = {s: 0 for s in ("draft", "processing", "done", "failed", "cancelled")}
    for row in SyncQueueLine.objects.filter(queue=queue).values("state").annotate(n=Count("id")):
        actual[row["state"]] = row["n"]
    stored = {s: getattr(queue, f"{s}_count") for s in actual}
    assert stored == actual, f"counter drift on queue #{queue.pk}: stored {stored}, lines say {actual}"
    assert queue.total_count == sum(actual.values())


def rows_arrive_first(monkeypatch, org, conn, ids, email: str = "hook@example.com") -> list:
    """Rows for ``ids`` appear (a webhook's) just before the run stores its first group: a first sync's plain
    insert of that group then fails, and it is written again as an upsert. Returns the rows made."""
    from customers.models import Customer
    from sync import engine

    store = engine.QueueRunner._store_page_lines
    arrived: list = []

    def webhook_first(self, records, plan, updates):
        if not arrived:
            for ext in ids:
                arrived.append(Customer.objects.create(organization=org, connection=conn, external_id=ext, email=email))
        return store(self, records, plan, updates)

    monkeypatch.setattr(engine.QueueRunner, "_store_page_lines", webhook_first)
    return arrived
