"""Page memos (sync.services.pagememo) against the WooCommerce sandbox over real HTTP: a page fetched again
byte for byte takes its records' source hashes from its memo; a changed page, a new mapping revision or a
memo that does not match its page is hashed again; a complete fetch forgets pages upstream no longer serves;
and whatever the memos say, every change upstream lands."""

from __future__ import annotations

import pytest

from connectors.woocommerce.resources import Customers
from customers.models import Customer
from sync import bulk, engine, services
from sync.models import PageMemo, QueueState


def _run(conn, resource="customers", **kw):
    q = services.sync_start(connection=conn, resource=resource, **kw).queue
    q.refresh_from_db()
    return q


@pytest.fixture
def hashed(monkeypatch):
    """How many records were hashed (bulk.source_hash calls) since the last reset."""
    calls = {"n": 0}
    real = bulk.source_hash

    def counting(record, revision, ignores=()):
        calls["n"] += 1
        return real(record, revision, ignores)

    monkeypatch.setattr(bulk, "source_hash", counting)
    return calls


def _memos(conn) -> int:
    """Page memos (body memos, whose keys begin with "~", are counted by _bodies)."""
    return PageMemo.objects.filter(connection=conn, resource="customers").exclude(digest__startswith="~").count()


def _bodies(conn) -> int:
    return PageMemo.objects.filter(connection=conn, resource="customers", digest__startswith="~").count()


def test_an_unchanged_rescan_hashes_nothing_and_writes_nothing(woo, hashed):
    sandbox, conn = woo(size=250)  # pages at offsets 0, 95, 190 (the connector's overlap of 5)
    assert _run(conn).state == QueueState.DONE
    assert hashed["n"] >= 250 and _memos(conn) == 3  # the first sync hashed every record and saved its pages
    hashed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250
    assert hashed["n"] == 0  # every page was one the first sync had seen
    assert not Customer.objects.filter(connection=conn, synced_at__gte=q.started_at).exists()  # no row written
    assert _memos(conn) == 3


def test_a_changed_record_is_written_and_only_its_page_is_hashed_again(woo, hashed):
    sandbox, conn = woo(size=250)
    _run(conn)
    cid = sandbox.ids("customers")[120]  # on the second page only (offsets 95-194, fresh from 100)
    sandbox.update("customers", cid, first_name="Changed")
    hashed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE
    assert Customer.objects.get(connection=conn, external_id=str(cid)).first_name == "Changed"
    assert 0 < hashed["n"] <= 100  # that page's fresh records, not the others'
    assert _memos(conn) == 3  # the changed page's old memo is gone after the complete fetch


def test_a_new_mapping_revision_misses_every_memo_and_replaces_them(woo, hashed, monkeypatch):
    sandbox, conn = woo(size=250)
    _run(conn)
    old = set(PageMemo.objects.filter(connection=conn).values_list("digest", flat=True))
    monkeypatch.setattr(engine, "mapping_revision", lambda resource: b"another mapper")
    hashed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and hashed["n"] >= 250
    new = set(PageMemo.objects.filter(connection=conn).values_list("digest", flat=True))
    assert len(new) == 6 and not (new & old)  # 3 page memos and 3 body memos, all under new keys


def test_a_memo_of_another_length_is_not_used(woo, hashed):
    sandbox, conn = woo(size=250)
    _run(conn)
    # A memo that does not hold one hash per record of its page (garbled, cut short, a bug): the page is
    # hashed again and its memo replaced; the run goes as it would without memos.
    memo = PageMemo.objects.filter(connection=conn).exclude(digest__startswith="~").first()
    memo.hashes = b"garbled"
    memo.save()
    hashed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250
    assert 0 < hashed["n"] <= 100  # that page's fresh records
    memo.refresh_from_db()
    assert len(bytes(memo.hashes)) % 16 == 0 and len(bytes(memo.hashes)) >= 16 * 95


def test_a_memo_with_wrong_hashes_costs_writes_and_loses_nothing(woo, hashed):
    """Memos are trusted to be the page's hashes. One that is not (hand-edited, say) can only make rows look
    changed: they are mapped and written again, from the records the run fetched."""
    sandbox, conn = woo(size=250)
    _run(conn)
    first = sandbox.ids("customers")[0]
    Customer.objects.filter(connection=conn, external_id=str(first)).update(first_name="Stale", sync_hash="f" * 32)
    for memo in PageMemo.objects.filter(connection=conn).exclude(digest__startswith="~"):
        memo.hashes = bytes(len(bytes(memo.hashes)))  # all zeros: no row holds that hash
        memo.save()
    hashed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250 and hashed["n"] == 0
    assert Customer.objects.get(connection=conn, external_id=str(first)).first_name != "Stale"


def test_a_smaller_store_leaves_memos_only_of_the_pages_it_serves(woo):
    sandbox, conn = woo(size=250)
    _run(conn)
    for cid in sandbox.ids("customers")[190:]:
        sandbox.delete("customers", cid)
    _run(conn)  # (whether the guard holds the 60 deletions is not this test's business)
    assert _memos(conn) == 2  # offsets 0 and 95, which now ends the store; the page at 190 is gone


def test_memos_off(woo, hashed, settings):
    settings.SYNC_PAGE_MEMO = False
    sandbox, conn = woo(size=250)
    _run(conn)
    hashed["n"] = 0
    assert _run(conn).state == QueueState.DONE
    assert hashed["n"] >= 250 and _memos(conn) == 0


def test_the_page_digest_covers_the_body_its_charset_and_the_last_key():
    """Page.digest: equal for the same body, Content-Type and position; anything else that changes what the
    records are (another byte, another charset, another last key before the page) changes it."""

    class Response:
        def __init__(self, body: bytes, ctype: str = "application/json; charset=UTF-8") -> None:
            self.content, self.headers = body, {"Content-Type": ctype, "X-WP-Total": "2"}
            self.encoding, self.url = None, "http://127.0.0.1/wp-json/wc/v3/customers"

    class Client:
        def __init__(self, response: Response) -> None:
            self.response = response

        def request(self, method, endpoint, params):
            return self.response

    body = b'[{"id": 1, "email": "a@example.com"}, {"id": 2, "email": "b@example.com"}]'

    def digest(client, token=None):
        from core.paging import FetchContext

        ctx = FetchContext(client=client, cursor="", token=token, full_scan=True)
        return Customers().step(ctx, token).digest

    same = digest(Client(Response(body)))
    assert same == digest(Client(Response(body)))
    assert same != digest(Client(Response(body.replace(b"b@", b"c@"))))
    assert same != digest(Client(Response(body, "application/json; charset=ISO-8859-1")))
    assert same != digest(Client(Response(body)), {"offset": 0, "last": [1]})


def test_memos_saved_a_few_pages_at_a_time_are_all_there(woo, hashed, monkeypatch):
    monkeypatch.setattr(engine, "MEMO_SAVE_PAGES", 1)  # saved as each group is planned, none left at the end
    saves = []
    real = services.pagememo_save
    monkeypatch.setattr(engine, "pagememo_save", lambda *a: saves.append(len(a[2])) or real(*a))
    sandbox, conn = woo(size=250)
    _run(conn)
    assert _memos(conn) == 3 and _bodies(conn) == 3 and sum(saves) == 6 and len(saves) >= 1
    hashed["n"] = 0
    assert _run(conn).state == QueueState.DONE and hashed["n"] == 0


# --- found by review ---------------------------------------------------------------------------------------
def test_a_deploy_that_changes_how_bodies_become_records_misses_every_memo(woo, monkeypatch):
    """connectors/base.py (parsing, external ids) is not the resource's module, so not in the mapping
    revision; it is in the memo revision. Run 1 parses one customer wrongly; run 2 runs code whose
    connectors/base.py source differs (a fix deployed): its memos miss and the row is corrected. (Before the
    fix, run 2 took the old hashes from the memos, they equalled the row's, and the wrong name stayed.)"""
    import connectors.base as base
    from sync.services import pagememo

    sandbox, conn = woo(size=30)
    cid = sandbox.ids("customers")[3]
    real = base.response_json

    def old_parse(response):
        data = real(response)
        for record in data:
            if isinstance(record, dict) and record.get("id") == cid:
                record["first_name"] = "OLD-PARSE"
        return data

    monkeypatch.setattr(base, "response_json", old_parse)
    assert _run(conn).state == QueueState.DONE
    assert Customer.objects.get(connection=conn, external_id=str(cid)).first_name == "OLD-PARSE"

    monkeypatch.setattr(base, "response_json", real)
    # A new process importing the fixed connectors/base.py: its classes carry the new file's digest.
    monkeypatch.setattr(pagememo, "_REVISIONS", {})
    for cls in (base.Resource, base.Client):
        monkeypatch.setattr(cls, "source_digest", b"the fixed connectors/base.py")
    assert _run(conn).state == QueueState.DONE
    assert Customer.objects.get(connection=conn, external_id=str(cid)).first_name != "OLD-PARSE"


def test_the_memo_revision_follows_code_and_library_versions(woo, monkeypatch):
    from core import revisions
    from sync.services import pagememo

    sandbox, conn = woo(size=5)
    resource, client = Customers(), object()
    before = pagememo.pagememo_revision(b"rev", resource, client)
    assert before == pagememo.pagememo_revision(b"rev", resource, client)
    assert before != pagememo.pagememo_revision(b"another mapping", resource, client)
    # The code as imported, not as on disk now: a file changed by a deploy does not change a running
    # process's revision (its classes' digests were taken at import)...
    monkeypatch.setattr(pagememo, "_REVISIONS", {})
    real_source = revisions.inspect.getsource  # what reading a module's file "now" goes through
    monkeypatch.setattr(revisions.inspect, "getsource", lambda module: real_source(module) + "\n# deployed")
    assert before == pagememo.pagememo_revision(b"rev", resource, client)
    monkeypatch.setattr(revisions.inspect, "getsource", real_source)
    # ...a process that imported other code has another one.
    monkeypatch.setattr(pagememo, "_REVISIONS", {})
    monkeypatch.setattr(Customers, "source_digest", b"other resources module")
    assert before != pagememo.pagememo_revision(b"rev", resource, client)
    monkeypatch.undo()
    monkeypatch.setattr(pagememo, "_REVISIONS", {})
    real_version = pagememo.metadata.version
    monkeypatch.setattr(pagememo.metadata, "version", lambda name: "9.9" if name == "orjson" else real_version(name))
    assert before != pagememo.pagememo_revision(b"rev", resource, client)


@pytest.mark.parametrize("failing", ["pagememo_lookup", "pagememo_save", "pagememo_prune"])
def test_a_failing_memo_statement_costs_the_memos_not_the_run(woo, monkeypatch, failing):
    """Memos only save work: a database error in one of their statements (the table not migrated yet, a
    statement timeout) turns them off for that fetch; the run finishes, deletions included."""
    from django.db import OperationalError

    sandbox, conn = woo(size=30)
    assert _run(conn).state == QueueState.DONE
    gone = sandbox.ids("customers")[0]
    sandbox.delete("customers", gone)

    def boom(*args, **kwargs):
        raise OperationalError('relation "sync_pagememo" does not exist')

    monkeypatch.setattr(engine, failing, boom)
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 29
    assert Customer.objects.get(connection=conn, external_id=str(gone)).deleted_at is not None


def test_incremental_runs_leave_memos_alone(woo, hashed):
    sandbox, conn = woo(size=150)
    assert _run(conn, "orders", full_scan=True).state == QueueState.DONE  # the reconciliation scan keeps memos
    scanned = set(PageMemo.objects.filter(connection=conn, resource="orders").values_list("digest", flat=True))
    assert scanned
    sandbox.update("orders", sandbox.ids("orders")[0], status="completed")
    assert _run(conn, "orders").state == QueueState.DONE  # incremental: no look-up, no save, no prune
    assert set(PageMemo.objects.filter(connection=conn, resource="orders").values_list("digest", flat=True)) == scanned


def test_a_resumed_fetch_does_not_prune(woo, monkeypatch):
    """A fetch that starts after page 1 (resumed after a crash) has not seen the pages before it."""
    sandbox, conn = woo(size=250)
    _run(conn)
    real = engine.QueueRunner._memo_start

    def resumed(self, ctx):
        self.queue.pages_fetched = 5  # as a fetch that takes over after five pages finds it
        real(self, ctx)

    pruned = []
    monkeypatch.setattr(engine.QueueRunner, "_memo_start", resumed)
    monkeypatch.setattr(engine, "pagememo_prune", lambda *a: pruned.append(a))
    _run(conn)
    assert pruned == []


def test_a_customer_who_only_visited_is_neither_mapped_nor_written_and_a_real_change_still_lands(
    woo, hashed, monkeypatch
):
    """WooCommerce moves a logged-in customer's ``wc_last_active`` user meta (in the REST customer's meta_data)
    to today's midnight at their first page view of each day, without touching date_modified (woocommerce
    includes/wc-user-functions.php: wc_current_user_is_active on the 'wp' action, wc_update_user_last_active,
    since 3.4.0). Customers.hash_ignores leaves meta_data out of the source hash: the visitor's page is hashed
    again (its bytes changed), the visitor is neither mapped nor written. A change to a mapped field of the
    same customer is written as ever."""
    sandbox, conn = woo(size=250)
    _run(conn)
    cid = sandbox.ids("customers")[120]  # on the second page only
    with sandbox.lock:  # what update_user_meta does: meta only, date_modified untouched
        sandbox.data["customers"][cid]["meta_data"] = [{"id": 9, "key": "wc_last_active", "value": "1764892800"}]
    mapped = []
    real_map = Customers.map
    monkeypatch.setattr(Customers, "map", lambda self, record: mapped.append(record["id"]) or real_map(self, record))
    hashed["n"] = 0
    q = _run(conn)
    assert q.state == QueueState.DONE and q.done_count == 250
    assert 0 < hashed["n"] <= 100  # the changed page's records were hashed again...
    assert mapped == []  # ...and found unchanged: not mapped...
    assert not Customer.objects.filter(connection=conn, synced_at__gte=q.started_at).exists()  # ...nor written

    sandbox.update("customers", cid, first_name="Changed")
    q = _run(conn)
    assert q.state == QueueState.DONE and mapped == [cid]
    assert Customer.objects.get(connection=conn, external_id=str(cid)).first_name == "Changed"
