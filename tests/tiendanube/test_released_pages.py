"""A Tiendanube first sync lets each page's records go once their rows are encoded (Page.reload: the body
parsed again; sync.engine's _released), over the sandbox and real HTTP."""

from __future__ import annotations

import pytest

from core.paging import LazyPage
from customers.models import Customer
from sync import engine, services

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_first_sync_hands_over_pages_whose_records_were_let_go(tn_sandbox, store_conn, settings, monkeypatch):
    settings.SYNC_FETCH_PROCESS = False  # the fetch thread's path
    pages = []
    real = engine.QueueRunner._prepare_pages
    monkeypatch.setattr(
        engine.QueueRunner, "_prepare_pages", lambda self, group: pages.extend(p for p, _ in group) or real(self, group)
    )
    sb = tn_sandbox(stores=1, records=450)  # the sandbox's pages: several, and a last one part full
    conn = store_conn(sb)
    q = services.sync_start(connection=conn, resource="customers", enqueue=False).queue
    assert engine.run_queue(q.pk) == "done"
    with_records = [page for page in pages if type(page) is LazyPage]
    # 450 at 200 a page: page 1 read alone (it gives the total), pages 2 and 3 through the page pool.
    assert len(with_records) == 3 and all(page._records is None for page in with_records), [type(p) for p in pages]
    q.refresh_from_db()
    assert Customer.objects.filter(connection=conn).count() == q.done_count == 450
