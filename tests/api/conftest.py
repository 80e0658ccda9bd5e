"""Fixtures for the REST API tests. fake_kind/fake_conn are copied from tests/sync/conftest.py (test packages
do not import each other's fixtures)."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sync import registry
from tests import fakes

SECRET = "pl4nted-S3CRET-value-9f2c1e"


@pytest.fixture(autouse=True)
def _clear_cache(db):
    """Throttle counters and idempotency markers live in the cache; start every test from zero."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fake_kind(monkeypatch):
    monkeypatch.setitem(registry.KINDS, "fake", "tests.fakes.connector")
    registry.get_connector.cache_clear()
    fakes.UPSTREAM.__init__(0)
    yield fakes.UPSTREAM
    registry.get_connector.cache_clear()


@pytest.fixture
def fake_conn(org, make_connection, fake_kind):
    return make_connection(org, kind="fake", credentials={"token": SECRET}, config={"region": "eu"})


@pytest.fixture
def other_conn(other_org, make_connection, fake_kind):
    return make_connection(other_org, kind="fake", name="globex fake", credentials={"token": "other-" + SECRET})


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(staff) -> APIClient:
    """Staff of org A, authenticated with a token."""
    return _client_for(staff)


@pytest.fixture
def other_api(other_staff) -> APIClient:
    return _client_for(other_staff)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


def assert_error(response, status: int, code: str | None = None) -> dict:
    """Every 4xx/5xx answers {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]
