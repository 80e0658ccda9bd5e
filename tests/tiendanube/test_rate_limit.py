"""The store's leaky bucket: respected proactively (zero 429s), shared by every client of the store,
and a 429 still waits and retries. A fast drain keeps these tests quick; the arithmetic is the same."""

import threading

import pytest

from connectors.tiendanube.connector import connector
from sync.connection_runs import connection_sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast_bucket(tn_settings):
    # 50x the real drain; the safety margin scales with it (8 requests = 80 ms of scheduling jitter on a
    # loaded test machine, where the real margin of 2 at 2/s is a full second).
    tn_settings.TIENDANUBE_BUCKET_SIZE = 20
    tn_settings.TIENDANUBE_BUCKET_DRAIN = 100.0
    tn_settings.TIENDANUBE_BUCKET_MARGIN = 8
    tn_settings.TIENDANUBE_PAGE_SIZE = 5
    tn_settings.TIENDANUBE_PAGE_CONCURRENCY = 4
    return tn_settings


def test_many_pages_sync_with_zero_429(fast_bucket, tn_sandbox, store_conn):
    sb = tn_sandbox(stores=1, records=150, bucket_size=20, drain=100.0)
    conn = store_conn(sb)
    result = connection_sync(connection_id=conn.pk)
    assert result.outcome == "success", result
    from commerce.models import Order, Product
    from customers.models import Customer

    assert Product.objects.filter(connection=conn).count() == 150
    assert Order.objects.filter(connection=conn).count() == 150
    assert Customer.objects.filter(connection=conn).count() == 150
    assert sb.api_calls >= 90  # 30 pages per resource, fetched concurrently
    assert sb.count_429 == 0


@pytest.mark.parametrize("cache_alias", ["tn-bucket", pytest.param("default", marks=pytest.mark.postgres)])
def test_bucket_is_shared_by_every_client_of_a_store(fast_bucket, tn_sandbox, store_conn, cache_alias):
    """Three 'workers' (separate clients) hammer one store at once: the shared bucket keeps them all under
    it. On PostgreSQL also through the production default, the database cache (one connection per thread)."""
    fast_bucket.TIENDANUBE_BUCKET_CACHE = cache_alias
    sb = tn_sandbox(stores=1, records=5, bucket_size=20, drain=100.0)
    conn = store_conn(sb)
    errors = []

    def worker():
        client = connector.client(conn)
        try:
            for _ in range(30):
                client.get_json("store")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            client.close()
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sb.api_calls == 90 and sb.count_429 == 0


def test_a_429_waits_for_one_slot_and_retries(fast_bucket, tn_sandbox, store_conn):
    sb = tn_sandbox(stores=1, records=1, bucket_size=20, drain=100.0)
    conn = store_conn(sb)
    st = sb.stores["1001"]
    import time

    st.level, st.leaked_at = 20.0, time.monotonic() + 0.05  # someone else filled the bucket
    client = connector.client(conn)
    data, response = client.get_json("store")
    client.close()
    assert data["id"] == 1001 and response.status_code == 200
    assert sb.count_429 >= 1 and client.rate_limited_count == sb.count_429


def test_wait_for_one_slot_uses_reset_over_limit(tn_settings):
    import requests

    from connectors.tiendanube.client import Bucket

    b = Bucket("x", size=40, drain=2.0, margin=2, cache_alias="tn-bucket")
    r = requests.Response()
    r.headers.update({"x-rate-limit-limit": "40", "x-rate-limit-remaining": "0", "x-rate-limit-reset": "20000"})
    assert b.wait_for_one(r) == pytest.approx(0.5)
    r.headers["Retry-After"] = "3"
    assert b.wait_for_one(r) == 3.0


@pytest.mark.parametrize(
    ("status", "verdict"), [(401, "auth"), (402, "fail"), (429, "rate_limited"), (503, "retry"), (404, "fail")]
)
def test_error_dialect(tn_settings, store_conn, tn_sandbox, status, verdict):
    import requests

    sb = tn_sandbox(stores=1, records=0)
    client = connector.client(store_conn(sb))
    r = requests.Response()
    r.status_code = status
    assert client.classify(r)[0].value == verdict
    client.close()
