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
    return make_connection(org, kind="fake", name="Acme shop", credentials={"token": "s3cr3t-token-value"})


@pytest.fixture
def other_conn(other_org, make_connection, fake_kind):
    return make_connection(other_org, kind="fake", name="Globex shop", credentials={"token": "other-secret-value"})


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def partial_queue(fake_conn, fake_kind):
    """A finished run with 3 good and 2 bad records: partial, action required."""
    from sync import services

    fake_kind.__init__(5)
    fake_kind.records[1]["email"] = ""
    fake_kind.records[3]["email"] = ""
    queue = services.sync_start(connection=fake_conn, resource="customers").queue
    queue.refresh_from_db()
    assert queue.state == "partial" and queue.action_required
    return queue
