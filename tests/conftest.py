"""Shared fixtures. Two organizations from the start (after healthchecks' hc/test.py): whatever one
organization's user does, the other must never see it."""

from __future__ import annotations

import ipaddress
import os
import socket
import types

import pytest

# ---------------------------------------------------------------------------------------------------
# Network fence: tests may talk to loopback only. Anything else fails the test that tried, before a
# single packet leaves. Installed at import time so live-server and sandbox threads are covered too.
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NetworkFenceViolation(AssertionError):
    pass


def _is_loopback(host) -> bool:
    if isinstance(host, str) and host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _check_address(address) -> None:
    if isinstance(address, tuple) and address and not _is_loopback(address[0]):
        raise NetworkFenceViolation(f"test tried to connect to non-loopback address {address!r}")


def _fenced_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check_address(address)
    return _real_connect(self, address)


def _fenced_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check_address(address)
    return _real_connect_ex(self, address)


def _fenced_getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_loopback(host if isinstance(host, str) else host.decode()):
        raise NetworkFenceViolation(f"test tried to resolve non-loopback host {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _fenced_connect
socket.socket.connect_ex = _fenced_connect_ex
socket.getaddrinfo = _fenced_getaddrinfo


# ---------------------------------------------------------------------------------------------------
def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` need PostgreSQL behaviour. On SQLite they are skipped - except when
    SYNCHUB_REQUIRE_POSTGRES=1 (the PostgreSQL leg of .ci/run), where running on anything else is an error.
    Tests marked ``forks_db`` need a database a forked child opens itself: on SQLite they run only on a file
    (SYNCHUB_SQLITE_TEST_FILE), as tests/sync/test_fetch_process_sqlite.py runs them in both legs."""
    from django.conf import settings

    on_pg = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    if os.environ.get("SYNCHUB_REQUIRE_POSTGRES") == "1" and not on_pg:
        raise pytest.UsageError("SYNCHUB_REQUIRE_POSTGRES=1 but DATABASE_URL is not PostgreSQL")
    if on_pg:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL; runs in the PostgreSQL leg of .ci/run")
    on_file = bool(os.environ.get("SYNCHUB_SQLITE_TEST_FILE"))
    skip_fork = pytest.mark.skip(reason="needs a database file; runs in tests/sync/test_fetch_process_sqlite.py")
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(skip)
        elif item.get_closest_marker("forks_db") and not on_file:
            item.add_marker(skip_fork)


@pytest.fixture
def fake_clock(monkeypatch):
    """Drive time: core.clock and the backoff library sleep on this clock instead of the wall."""
    import backoff._sync

    from core import clock as clock_mod

    fake = clock_mod.FakeClock()
    clock_mod.set_clock(fake)
    monkeypatch.setattr(backoff._sync, "time", types.SimpleNamespace(sleep=fake.sleep))
    yield fake
    clock_mod.set_clock(clock_mod.SystemClock())


@pytest.fixture
def org(db):
    from sync.models import Organization

    return Organization.objects.create(name="Acme", slug="acme")


@pytest.fixture
def other_org(db):
    from sync.models import Organization

    return Organization.objects.create(name="Globex", slug="globex")


def _staff(username, organization, *, superuser=False):
    from django.contrib.auth import get_user_model

    from sync.models import Membership

    user = get_user_model().objects.create_user(
        username=username, password="pw-" + username, is_staff=True, is_superuser=superuser
    )
    if organization is not None:
        Membership.objects.create(user=user, organization=organization, role="admin")
    return user


@pytest.fixture
def staff(org):
    return _staff("alice", org)


@pytest.fixture
def other_staff(other_org):
    return _staff("bob", other_org)


@pytest.fixture
def superuser(db):
    return _staff("root", None, superuser=True)


@pytest.fixture
def make_connection(db):
    from connectors.models import Connection

    def make(organization, kind="woocommerce", base_url="http://127.0.0.1:9", credentials=None, **kw):
        conn = Connection(
            organization=organization, kind=kind, name=kw.pop("name", f"{kind} test"), base_url=base_url, **kw
        )
        conn.credentials = credentials or {}
        conn.save()
        return conn

    return make


@pytest.fixture
def dns(monkeypatch):
    """Stub resolver: ``dns({"shop.example": ["93.184.216.34"]})``. Names in the table resolve to their
    addresses; IP literals and localhost go to the real resolver (sandboxes); any other name fails the test,
    so a test also proves which names the code under test resolved. Returns the list of names looked up."""
    table: dict[str, list[str]] = {}
    looked_up: list[str] = []

    def stub(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name in table:
            looked_up.append(name)
            out = []
            for ip in table[name]:
                if ":" in ip:
                    out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)))
                else:
                    out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)))
            return out
        try:
            ipaddress.ip_address(str(name).split("%", 1)[0])
        except ValueError:
            if name != "localhost":
                pytest.fail(f"unexpected DNS lookup of {name!r}")
        return _fenced_getaddrinfo(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", stub)

    def install(mapping: dict[str, list[str]]) -> list[str]:
        table.update(mapping)
        return looked_up

    return install


@pytest.fixture
def fork_beside_test_threads(monkeypatch):
    """sync.fetchproc forks only while no other thread runs (fetchproc.unavailable). In the test process the
    threads of session fixtures and earlier tests run on (moto's S3 server, test HTTP servers, their request
    threads), idle and holding no lock the fetch uses, so here a fork beside the threads running when the
    test starts is allowed; call the fixture's value to allow those running now too (a sandbox the test
    started). A thread started later is still a reason not to fork."""
    import threading

    from sync import fetchproc

    present: set[threading.Thread] = set()
    real = fetchproc._harmless

    def allow_running() -> None:
        present.update(threading.enumerate())

    allow_running()
    monkeypatch.setattr(fetchproc, "_harmless", lambda thread: thread in present or real(thread))
    return allow_running


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """SYNCHUB_SQLITE_TEST_FILE=<path>: the SQLite test database is that file rather than memory, for the tests
    marked ``forks_db`` (a forked child opens the database itself; an in-memory one it would only inherit).
    tests/sync/test_fetch_process_sqlite.py runs them so, in a pytest of their own."""
    from django.conf import settings

    path = os.environ.get("SYNCHUB_SQLITE_TEST_FILE")
    if path and settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # One file per xdist worker, as the parallel suffix above gives the other databases (setting NAME here
        # replaces what it set): two workers must not share, or delete, one file.
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"{path}_{worker}" if worker else path
