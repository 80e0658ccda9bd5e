"""The parallel cap under real concurrency: threads with their own database connections race for slots."""

import threading

import pytest

from sync import runpolicy
from sync.models import RunSlot


def _race(fn, args_list):
    results, barrier = [], threading.Barrier(len(args_list))

    def run(args):
        from django.db import connection

        try:
            barrier.wait()
            results.append(fn(*args))
        except runpolicy.AlreadyRunning:
            results.append("running")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(a,)) for a in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cap_holds_under_concurrent_acquires(org, make_connection, settings):
    settings.TIENDANUBE_MAX_PARALLEL_SYNCS = 3
    conns = [make_connection(org, kind="tiendanube", external_account_id=str(2000 + i), name=f"s{i}") for i in range(6)]
    results = _race(runpolicy.slot_acquire, [(c,) for c in conns])
    assert sum(1 for r in results if isinstance(r, RunSlot)) == 3
    assert RunSlot.objects.filter(connection__isnull=False).count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_store_gets_one_slot_under_concurrent_acquires(org, make_connection, settings):
    settings.TIENDANUBE_MAX_PARALLEL_SYNCS = 3
    conn = make_connection(org, kind="tiendanube", external_account_id="3000", name="s")
    results = _race(runpolicy.slot_acquire, [(conn,)] * 4)
    assert sum(1 for r in results if isinstance(r, RunSlot)) == 1
    assert results.count("running") == 3
