import pytest

from connectors import registry
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
