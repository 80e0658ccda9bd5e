"""Pure pieces: the page dialect, the mappers, Retry-After parsing."""

import datetime as dt
from decimal import Decimal

import pytest

from connectors.base import BadPage, FetchContext, MappingError, PaginationStalled, parse_retry_after
from connectors.lightspeed.resources import CustomerGroups, Customers, Products


class StubClient:
    def __init__(self, body):
        self.body = body
        self.params = None

    def get_json(self, path, *, params=None, headers=None):
        self.params = params
        return self.body, None


def _fetch(body, *, cursor="", token=None, full_scan=False):
    client = StubClient(body)
    page = Customers().fetch_page(FetchContext(client=client, cursor=cursor, token=token, full_scan=full_scan))
    return page, client.params


def test_page_uses_version_max_as_next_after():
    page, params = _fetch(
        {"data": [{"id": "a", "version": 12}, {"id": "b", "version": 19}], "version": {"min": 12, "max": 19}},
        cursor="10",
    )
    assert params["after"] == "10" and params["deleted"] == "true"
    assert page.next_token == "19" and page.cursor == "19" and len(page.records) == 2


def test_token_wins_over_cursor_and_full_scan_starts_from_zero():
    _, params = _fetch({"data": [], "version": {"min": None, "max": None}}, cursor="10", token="55")
    assert params["after"] == "55"
    _, params = _fetch({"data": [], "version": {"min": None, "max": None}}, cursor="10", full_scan=True)
    assert "after" not in params


def test_empty_data_is_the_end():
    page, _ = _fetch({"data": [], "version": {"min": None, "max": None}}, cursor="10")
    assert page.next_token is None and page.records == []


def test_big_versions_stay_exact():
    big = 2**63 + 11
    page, _ = _fetch({"data": [{"id": "a", "version": big}], "version": {"min": big, "max": big}}, token=str(big - 1))
    assert page.next_token == str(big)


@pytest.mark.parametrize(
    "body", [[], {"data": {"id": 1}}, {"data": [{"id": "a"}]}, {"data": [{"id": "a"}], "version": {"max": "x"}}]
)
def test_malformed_pages_fail_the_run(body):
    with pytest.raises(BadPage):
        _fetch(body)


def test_a_version_that_does_not_advance_is_a_stall():
    with pytest.raises(PaginationStalled):
        _fetch({"data": [{"id": "a", "version": 5}], "version": {"min": 5, "max": 5}}, token="5")


def test_deleted_records_are_tombstones():
    assert Customers().is_deleted({"id": "a", "deleted_at": "2026-01-01T00:00:00+00:00"})
    assert not Customers().is_deleted({"id": "a", "deleted_at": None})


def test_customer_mapper():
    values = Customers().map(
        {
            "id": "u",
            "first_name": " Ana ",
            "last_name": "Gomez",
            "email": "a@example.com",
            "loyalty_balance": "12.5",
            "customer_group_id": "g1",
            "version": 9,
            "created_at": "2017-01-19T16:49:35+00:00",
            "updated_at": "2017-01-20T10:00:00+02:00",
        }
    )
    assert values["first_name"] == "Ana" and values["loyalty_balance"] == Decimal("12.50")
    assert values["upstream_updated_at"] == dt.datetime(2017, 1, 20, 8, 0, tzinfo=dt.UTC)
    assert values["extra"]["version"] == "9"
    with pytest.raises(MappingError):
        Customers().map({"id": "u", "loyalty_balance": "lots"})


def test_product_and_group_mappers():
    assert Products().map({"id": "p", "name": "Mug", "active": False})["status"] == "inactive"
    with pytest.raises(MappingError):
        CustomerGroups().map({"id": "g", "name": ""})


def test_retry_after_as_http_date_and_seconds(fake_clock):
    later = fake_clock.now() + dt.timedelta(seconds=42)
    assert parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT")) == 42.0
    assert parse_retry_after("17") == 17.0
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT") == 0.0  # in the past: do not wait
    assert parse_retry_after("soon") is None
