"""sync.fetchproc.ForkedProducer on its own: a generator run in a forked child, its items, errors and death
carried back, and a child stopped early killed and reaped (no database needed)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sync.fetchproc import FetchProcessError, ForkedProducer, unavailable

pytestmark = pytest.mark.usefixtures("fork_beside_test_threads")


def _gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # reaped already
    return False


def test_items_come_back_in_order_and_the_child_is_reaped():
    def produce():
        for i in range(2000):
            yield i, {"page": i, "blob": b"x" * 500}

    producer = ForkedProducer(produce, name="t")
    assert producer.pid != os.getpid()
    assert [i for i, _ in producer] == list(range(2000))
    assert _gone(producer.pid)


def test_an_exception_comes_back_with_its_class_and_the_childs_trace():
    def produce():
        yield 1
        raise KeyError("no such page")

    items = []
    with pytest.raises(KeyError) as caught:
        for item in ForkedProducer(produce, name="t"):
            items.append(item)
    assert items == [1]
    assert any("in the fetch process" in note and "produce" in note for note in caught.value.__notes__)


def test_an_exception_that_cannot_be_pickled_comes_back_as_a_fetch_process_error():
    class Local(Exception):  # a class pickle cannot find by name
        pass

    def produce():
        raise Local("secret=abc123 went wrong")
        yield  # pragma: no cover

    with pytest.raises(FetchProcessError) as caught:
        list(ForkedProducer(produce, name="t"))
    assert "Local: " in str(caught.value) and "abc123" not in str(caught.value), "named, and redacted"


def test_a_child_that_dies_is_a_fetch_process_error_naming_the_signal():
    def produce():
        yield 1
        os.kill(os.getpid(), signal.SIGKILL)
        yield 2  # pragma: no cover

    producer = ForkedProducer(produce, name="t")
    got = []
    with pytest.raises(FetchProcessError, match=r"ended without finishing \(killed by signal 9\)"):
        for item in producer:
            got.append(item)
    assert got == [1]
    assert _gone(producer.pid)


def test_a_consumer_that_stops_early_kills_the_child():
    def produce():
        i = 0
        while True:  # never ends by itself
            yield i
            i += 1

    producer = ForkedProducer(produce, name="t")
    items = iter(producer)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert _gone(producer.pid)


def test_stop_from_another_thread_wakes_a_reader_waiting_on_the_pipe():
    def produce():
        yield 1
        time.sleep(60)  # a page that takes long
        yield 2  # pragma: no cover

    producer = ForkedProducer(produce, name="t")
    got, errors = [], []

    def read():
        try:
            got.extend(producer)
        except FetchProcessError as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)
    started = time.monotonic()
    producer.stop()
    reader.join(timeout=10)
    assert not reader.is_alive() and time.monotonic() - started < 5
    assert got == [1] and len(errors) == 1
    assert _gone(producer.pid)


def test_no_fork_while_another_thread_runs():
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert "other threads" in unavailable()
        with pytest.raises(RuntimeError, match="other threads"):
            ForkedProducer(lambda: iter(()), name="t")
    finally:
        release.set()
        other.join()


def test_a_multiprocessing_queue_feeder_does_not_prevent_the_fork_but_a_thread_of_its_name_does():
    """A django-q2 worker has a result queue whose feeder thread runs from its first task on; it holds no
    database connection. Another thread that merely takes its name is still a reason not to fork."""
    import multiprocessing

    queue = multiprocessing.Queue()
    queue.put("result")  # starts the feeder thread
    release = threading.Event()
    impostor = threading.Thread(target=release.wait, name="QueueFeederThread")
    try:
        assert [t.name for t in threading.enumerate()].count("QueueFeederThread") == 1
        assert unavailable() is None
        impostor.start()
        assert "QueueFeederThread" in unavailable()
    finally:
        release.set()
        if impostor.is_alive():
            impostor.join()
        assert queue.get(timeout=5) == "result"
        queue.close()
        queue.join_thread()


def test_a_broken_pipe_raised_by_the_producer_itself_comes_back_as_itself():
    """Only a broken pipe to the parent means the parent is gone; one the resource raises (a socket of its
    own) is its error like any other."""

    def produce():
        yield 1
        raise BrokenPipeError("the upstream's socket")

    with pytest.raises(BrokenPipeError, match="the upstream's socket"):
        list(ForkedProducer(produce, name="t"))


def test_the_child_dies_with_its_parent(tmp_path):
    """A worker killed by its timeout (SIGKILL: no finally runs) leaves no fetch process behind."""
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings_test')\n"
        "import django; django.setup()\n"
        "from sync.fetchproc import ForkedProducer\n"
        "def produce():\n"
        "    yield 1\n"
        "    time.sleep(120)\n"
        "    yield 2\n"
        "p = ForkedProducer(produce, name='t')\n"
        "items = iter(p)\n"
        "next(items)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": root},
    )
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # alive
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break  # gone (the init process reaped it)
            with open(f"/proc/{child}/stat") as stat:
                if stat.read().split(") ")[1].startswith("Z"):
                    break  # dead, waiting for init to reap it
            time.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the fetch process outlived its parent")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_the_pipe_is_widened_to_hold_a_page():
    """Linux's default pipe (64 KiB) made each ~90 kB page wait for the parent's read; widened to 1 MiB where
    the system allows it (elsewhere best effort: the pipe keeps its size)."""
    fcntl = pytest.importorskip("fcntl")
    cap = Path("/proc/sys/fs/pipe-max-size")
    if not hasattr(fcntl, "F_GETPIPE_SZ") or not cap.exists() or int(cap.read_text()) < 1 << 20:
        pytest.skip("Linux with pipes of 1 MiB allowed")

    def produce():
        yield 1

    producer = ForkedProducer(produce, name="t")
    size = fcntl.fcntl(producer._reader.fileno(), fcntl.F_GETPIPE_SZ)
    assert list(producer) == [1]  # drained: the child reaped, the pipe closed
    assert size >= 1 << 20


def test_a_pages_records_come_back_as_they_were_sent():
    """engine._packed: marshal for parsed JSON (exact types only), pickle for anything else, and either way
    the records come back equal and of the same types (a dict subclass, a datetime, a big integer, NaN)."""
    import collections
    import datetime as dt
    import math

    from sync.engine import _packed, _unpacked

    parsed = [{"id": 2**70, "n": -0.0, "ok": True, "none": None, "list": [1, "ñ", 1.5], "nested": {"a": {}}}]
    assert _packed(parsed)[:1] == b"m"
    back = _unpacked(_packed(parsed))
    assert back == parsed and type(back[0]["ok"]) is bool and math.copysign(1, back[0]["n"]) == -1
    for other in ([collections.OrderedDict(id=1)], [{"at": dt.datetime(2026, 12, 5, tzinfo=dt.UTC)}], [("a", "tuple")]):
        assert _packed(other)[:1] == (b"m" if isinstance(other[0], tuple) else b"p")
        again = _unpacked(_packed(other))
        assert again == other and [type(r) for r in again] == [type(r) for r in other]
    nan = _unpacked(_packed([{"x": float("nan")}]))[0]["x"]
    assert math.isnan(nan)


def test_messages_travel_by_marshal_where_it_takes_them_and_by_pickle_otherwise():
    """fetchproc._dumped: marshal for plain values (exactly what was sent, a buffer as bytes), pickle for any
    other object (a subclass of a plain type, a datetime), each read back by _loaded."""
    import collections
    import datetime as dt

    from sync.fetchproc import _dumped, _loaded

    plain = ("item", ({"a": [1, 2**70, -0.0, None, True]}, ("x", b"\x80y"), {1, 2}, ["ñ", 1.5]))
    assert _dumped(plain)[:1] == b"M"
    back = _loaded(_dumped(plain))
    assert back == plain and type(back[1][0]["a"][4]) is bool and str(back[1][0]["a"][2]) == "-0.0"
    assert _loaded(_dumped(("item", [bytearray(b"ab"), memoryview(b"cd")]))) == ("item", [b"ab", b"cd"])

    for other in (collections.OrderedDict(a=1), dt.datetime(2026, 12, 5, tzinfo=dt.UTC), signal.SIGTERM):
        message = ("item", [other])
        assert _dumped(message)[:1] == b"\x80"  # pickle's protocol byte
        again = _loaded(_dumped(message))
        assert again == message and type(again[1][0]) is type(other)


def test_a_fetch_process_is_wanted_by_default_on_sqlite_with_two_cpus_and_as_set_otherwise(settings, monkeypatch):
    import types

    from sync import fetchproc

    settings.SYNC_FETCH_PROCESS = "auto"
    monkeypatch.setattr(fetchproc.sys, "platform", "linux")
    for vendor, cpus, wanted in (
        ("sqlite", 2, True),
        ("sqlite", 8, True),
        ("sqlite", 1, False),
        ("postgresql", 8, False),
    ):
        monkeypatch.setattr(fetchproc, "connection", types.SimpleNamespace(vendor=vendor))
        monkeypatch.setattr(fetchproc, "_cpus", lambda cpus=cpus: cpus)
        assert fetchproc.wanted() is wanted, (vendor, cpus)
    monkeypatch.setattr(fetchproc, "connection", types.SimpleNamespace(vendor="sqlite"))
    monkeypatch.setattr(fetchproc.sys, "platform", "darwin")
    assert fetchproc.wanted() is False, "not on macOS"
    for setting in (True, False):
        settings.SYNC_FETCH_PROCESS = setting
        assert fetchproc.wanted() is setting


def test_the_cpus_are_those_the_process_may_run_on_and_its_cgroup_quota_allows(tmp_path, monkeypatch):
    from sync import fetchproc

    monkeypatch.setattr(fetchproc.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    v2, v1 = tmp_path / "cpu.max", tmp_path / "cpu.cfs_quota_us"
    monkeypatch.setattr(fetchproc, "_CGROUP_V2", str(v2))
    monkeypatch.setattr(fetchproc, "_CGROUP_V1", str(v1))
    assert fetchproc._cpus() == 4, "no cgroup files: the affinity"
    for text, cpus in (("max 100000", 4), ("100000 100000", 1), ("150000 100000", 1), ("200000 100000", 2)):
        v2.write_text(text + "\n")
        assert fetchproc._cpus() == cpus, text
    v2.unlink()
    v1.write_text("-1\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert fetchproc._cpus() == 4
    v1.write_text("250000\n")
    assert fetchproc._cpus() == 2
    v1.write_text("garbled\n")
    assert fetchproc._cpus() == 4


def test_the_setting_reads_auto_true_and_false_and_refuses_anything_else():
    from django.core.exceptions import ImproperlyConfigured

    from config.settings import auto_or_bool

    for text, value in (
        ("auto", "auto"),
        (" Auto ", "auto"),
        ("true", True),
        ("1", True),
        ("off", False),
        ("0", False),
    ):
        assert auto_or_bool("SYNC_FETCH_PROCESS", text) == value, text
    for text in ("", "atuo", "2"):
        with pytest.raises(ImproperlyConfigured, match="must be auto, true or false"):
            auto_or_bool("SYNC_FETCH_PROCESS", text)


def test_a_reload_travels_only_as_one_of_the_resources_own_methods_over_plain_values():
    """engine._travelling: what a fetch process may send instead of a page's records, for the parent to call
    on its own resource by name. Anything else (another object's method, a function, keywords, a value that
    is not plain) is None: the records are packed as before."""
    import functools

    from sync.engine import _travelling
    from tests.fakes import FakeCustomers

    resource, other = FakeCustomers(), FakeCustomers()
    body, keys = b"[...]", [[1], None, [3]]
    assert _travelling(functools.partial(resource._reloaded, body, "utf-8", keys), resource) == (
        "_reloaded",
        (body, "utf-8", keys),
    )
    for reload in (
        None,
        lambda: [],
        functools.partial(other._reloaded, body),  # another resource's
        functools.partial(resource._reloaded, body=body),  # keywords
        functools.partial(resource._reloaded, bytearray(body)),  # would come back as bytes
        functools.partial(resource._reloaded, [body, {"a": 1}]),  # a dict inside
        functools.partial(len, body),  # not a method
    ):
        assert _travelling(reload, resource) is None, reload
    quiet = FakeCustomers()
    quiet.reload_travels = False  # a resource that does not say its reloads read nothing but their arguments
    assert _travelling(functools.partial(quiet._reloaded, body), quiet) is None
    resource._reloaded = lambda body: []  # an attribute of the instance now: no longer the method it names
    assert _travelling(functools.partial(FakeCustomers._reloaded.__get__(resource), body), resource) is None
