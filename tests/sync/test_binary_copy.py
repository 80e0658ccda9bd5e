"""PostgreSQL's binary COPY (sync/bulk.py, copy_model_rows): the same rows and the same refusals as text COPY.

Every test writes the same values twice, once with SYNC_BINARY_COPY on and once off, through the two COPY
callers (bulk.upsert_rows' staging table and bulk.insert_copy, a first sync's plain COPY), and compares what
the database then holds, or the error it raised."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest
from django.db import DataError, IntegrityError, transaction
from django.forms.models import model_to_dict

from customers.models import Customer, LoyaltyTier
from sync import bulk

pytestmark = pytest.mark.postgres


def _write(how: str, conn, org, ext: str, values: dict) -> None:
    row = {"organization_id": org.pk, "connection_id": conn.pk, "external_id": ext, **values}
    with transaction.atomic():
        if how == "insert":
            bulk.insert_copy(Customer, [row])
        else:
            bulk.upsert_rows(Customer, [row], unique_fields=["connection", "external_id"], update_fields=sorted(values))


def _stored(conn, ext: str) -> dict:
    return model_to_dict(Customer.objects.get(connection=conn, external_id=ext), exclude=("id", "external_id"))


def test_customers_copy_in_binary_and_a_model_with_an_int4_column_in_text(settings):
    assert settings.SYNC_BINARY_COPY
    plan = bulk._binary_plan(Customer)
    assert plan is not None
    kinds = {field.name: kind for kind, field in plan}
    assert kinds["billing"] == "bytea" and kinds["upstream_updated_at"] == "timestamptz"
    assert kinds["connection"] == "int8" and kinds["email"] == "text" and kinds["loyalty_balance"] == "numeric"
    # LoyaltyTier.rank is an int4 column: psycopg's binary int4 dumper wraps 2**40 to 0 without an error.
    assert bulk._binary_plan(LoyaltyTier) is None
    settings.SYNC_BINARY_COPY = False
    assert bulk._binary_plan(Customer) is None


VALUES = {
    "email": "ñandú@example.com",
    "first_name": 'quote " backslash \\ tab\t newline\n and ümlaut',
    "last_name": "",
    "username": 12345,  # not a str: the field's own preparation makes it "12345", as text COPY did
    "billing": {"city": "Ñuñoa", "n": 1, "nested": [None, True, 1.5, {"k": "v"}]},
    "shipping": [],
    "extra": {"big": 2**70, "s": "\\u0041 stays text"},  # 2**70: orjson refuses it, json.dumps takes over
    "is_paying_customer": 1,  # not a bool
    "loyalty_balance": 7.125,  # a float for a numeric(14, 2)
    "upstream_created_at": dt.datetime(2024, 5, 1, 10, 0, 30, 123456),  # naive: read as UTC
    "upstream_updated_at": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "sync_version": "2024-05-01T10:00:00",
    "sync_hash": "0" * 32,
}


@pytest.mark.parametrize("how", ["upsert", "insert"])
def test_binary_and_text_copy_store_the_same_row(fake_conn, org, settings, how):
    _write(how, fake_conn, org, "binary", VALUES)
    settings.SYNC_BINARY_COPY = False
    _write(how, fake_conn, org, "text", VALUES)
    binary, text = _stored(fake_conn, "binary"), _stored(fake_conn, "text")
    assert binary == text
    assert binary["username"] == "12345" and binary["is_paying_customer"] is True
    assert binary["loyalty_balance"] == Decimal("7.13") and binary["extra"]["big"] == 2**70
    assert binary["upstream_created_at"] == dt.datetime(2024, 5, 1, 10, 0, 30, 123456, tzinfo=dt.UTC)
    assert binary["upstream_updated_at"] == dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)


def test_text_for_a_datetime_and_nulls_are_stored_alike(fake_conn, org, settings):
    values = {"email": "a@example.com", "upstream_created_at": "2024-05-01T10:00:00Z", "loyalty_balance": None}
    _write("upsert", fake_conn, org, "binary", values)
    settings.SYNC_BINARY_COPY = False
    _write("upsert", fake_conn, org, "text", values)
    binary = _stored(fake_conn, "binary")
    assert binary == _stored(fake_conn, "text")
    assert binary["upstream_created_at"] == dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
    assert binary["loyalty_balance"] is None and binary["upstream_updated_at"] is None


REFUSED = {
    "a varchar too long": {"phone": "9" * 65},
    "a NUL in text": {"first_name": "a\x00b"},
    "a NUL in JSON": {"billing": {"city": "a\x00b"}},
    "a numeric too large": {"loyalty_balance": Decimal("1e20")},
}


@pytest.mark.parametrize("how", ["upsert", "insert"])
@pytest.mark.parametrize("values", REFUSED.values(), ids=REFUSED.keys())
def test_the_server_refuses_the_same_values_with_the_same_error(fake_conn, org, settings, how, values):
    # Django's DataError both ways, which is what the engine acts on (the group goes the draft way and the
    # record fails its own line). The NUL in text is refused by psycopg itself in text form, by the server in
    # binary; every other refusal is the server's both ways.
    for binary in (True, False):
        settings.SYNC_BINARY_COPY = binary
        with pytest.raises(DataError) as caught:
            _write(how, fake_conn, org, f"refused-{binary}", {"email": "a@example.com", **values})
        assert isinstance(caught.value.__cause__, psycopg.DataError)
    assert not Customer.objects.filter(connection=fake_conn).exists()


def test_a_bigint_beyond_64_bits_is_an_error_not_a_wrapped_value(fake_conn, org):
    row = {"organization_id": org.pk, "connection_id": 2**64 + fake_conn.pk, "external_id": "x", "email": "a@b.c"}
    with pytest.raises((OverflowError, DataError, IntegrityError)), transaction.atomic():
        bulk.insert_copy(Customer, [row])
    assert not Customer.objects.filter(external_id="x").exists()
