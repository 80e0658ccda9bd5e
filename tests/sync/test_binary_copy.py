"""PostgreSQL's binary COPY (sync/bulk.py, copy_model_rows): the same rows and the same refusals as text COPY.

Every test writes the same values twice, once with SYNC_BINARY_COPY on and once off, through the three COPY
callers (bulk.upsert_rows' staging table, bulk.insert_copy, a first sync's plain COPY, and insert_encoded,
the same with rows a RowEncoder encoded beforehand, or insert_copy where it refused to), and compares what
the database then holds, or the error it raised."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest
from django.core.exceptions import ValidationError
from django.db import DataError, transaction
from django.forms.models import model_to_dict

from customers.models import Customer, LoyaltyTier
from sync import bulk

pytestmark = pytest.mark.postgres


def _write(how: str, conn, org, ext: str, values: dict) -> None:
    row = {"organization_id": org.pk, "connection_id": conn.pk, "external_id": ext, **values}
    with transaction.atomic():
        if how == "insert":
            bulk.insert_copy(Customer, [row])
        elif how == "encoded":
            encoder = bulk.RowEncoder.for_model(Customer)  # None with SYNC_BINARY_COPY off: the text path
            encoded = encoder.encode(row) if encoder is not None else None
            if encoded is None:
                bulk.insert_copy(Customer, [row])
            else:
                bulk.insert_encoded(Customer, [encoded])
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


@pytest.fixture
def forms(monkeypatch):
    """The COPY form of every call: "binary" or "text"."""
    seen: list[str] = []
    real = bulk.copy_rows

    def spy(table, columns, rows, *, binary_types=()):
        seen.append("binary" if binary_types else "text")
        return real(table, columns, rows, binary_types=binary_types)

    def encoded_spy(table, columns, rows):
        seen.append("encoded")
        return real_encoded(table, columns, rows)

    real_encoded = bulk.copy_encoded
    monkeypatch.setattr(bulk, "copy_rows", spy)
    monkeypatch.setattr(bulk, "copy_encoded", encoded_spy)
    return seen


# What mappers give: every value of the exact type its column's binary form takes as it is.
EXACT = {
    "email": "ñandú@example.com",
    "first_name": 'quote " backslash \\ tab\t newline\n and ümlaut',
    "last_name": "",
    "billing": {"city": "Ñuñoa", "n": 1, "nested": [None, True, 1.5, {"k": "v"}]},
    "shipping": [],
    "extra": {"big": 2**70, "s": "\\u0041 stays text"},  # 2**70: orjson refuses it, json.dumps takes over
    "is_paying_customer": True,
    "loyalty_balance": Decimal("7.125"),  # rounded by the server to the column's 2 places
    "upstream_created_at": dt.datetime(2024, 5, 1, 10, 0, 30, 123456, tzinfo=dt.UTC),
    "upstream_updated_at": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "sync_version": "2024-05-01T10:00:00",
    "sync_hash": "0" * 32,
}


@pytest.mark.parametrize("how", ["upsert", "insert", "encoded"])
def test_binary_and_text_copy_store_the_same_row(fake_conn, org, settings, forms, how):
    _write(how, fake_conn, org, "binary", EXACT)
    settings.SYNC_BINARY_COPY = False
    _write(how, fake_conn, org, "text", EXACT)
    assert forms == ["encoded" if how == "encoded" else "binary", "text"]
    binary, text = _stored(fake_conn, "binary"), _stored(fake_conn, "text")
    assert binary == text
    assert binary["loyalty_balance"] == Decimal("7.13") and binary["extra"]["big"] == 2**70
    assert binary["upstream_updated_at"] == dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)


# Values of another type: psycopg's binary dumpers would convert them otherwise than the text path (int()
# truncates a float, str(True) is "True" where text COPY sends "t"), wrap or refuse them with another error.
# Each sends its whole call through text COPY, so it means what it always meant.
OTHER = {
    "a str for a datetime": {"upstream_created_at": "2024-05-01T10:00:00.1234567Z"},
    "a naive datetime": {"upstream_created_at": dt.datetime(2024, 5, 1, 10, 0)},
    "an int for a text column": {"username": 12345},
    "a bool for a text column": {"username": True},
    "an int for a bool": {"is_paying_customer": 1},
    "a float for a decimal": {"loyalty_balance": 7.125},
    "a str for a decimal": {"loyalty_balance": "7.5"},
    "a decimal too precise for binary": {"loyalty_balance": Decimal("1E-16384")},
    "a str for a foreign key": {"organization_id": "ORG"},
}


@pytest.mark.parametrize("how", ["upsert", "insert", "encoded"])
@pytest.mark.parametrize("values", OTHER.values(), ids=OTHER.keys())
def test_a_value_of_another_type_takes_the_text_path_and_means_the_same(fake_conn, org, settings, forms, how, values):
    values = {**values}
    if values.get("organization_id") == "ORG":
        values["organization_id"] = str(org.pk)
    _write(how, fake_conn, org, "a", {"email": "a@example.com", **values})
    settings.SYNC_BINARY_COPY = False
    _write(how, fake_conn, org, "b", {"email": "a@example.com", **values})
    assert forms == ["text", "text"]
    assert _stored(fake_conn, "a") == _stored(fake_conn, "b")


# (values, the form their COPY takes): the server's own refusals come in binary and must be the text path's.
REFUSED = {
    "a varchar too long": ({"phone": "9" * 65}, "binary"),
    "a NUL in text": ({"first_name": "a\x00b"}, "binary"),
    "a NUL in JSON": ({"billing": {"city": "a\x00b"}}, "binary"),
    "a numeric too large": ({"loyalty_balance": Decimal("1e20")}, "binary"),
    # Django's DecimalField refuses them on the text path, which they take
    "NaN": ({"loyalty_balance": Decimal("NaN")}, "text"),
    "sNaN": ({"loyalty_balance": Decimal("sNaN")}, "text"),
    "Infinity": ({"loyalty_balance": Decimal("-Infinity")}, "text"),
    # beyond int8: psycopg's binary dumper would raise OverflowError, the text path gets the server's error
    "a bigint beyond 64 bits": ({"organization_id": 2**64}, "text"),
}


@pytest.mark.parametrize("how", ["upsert", "insert", "encoded"])
@pytest.mark.parametrize(("values", "form"), REFUSED.values(), ids=REFUSED.keys())
def test_the_same_values_are_refused_with_the_same_error(fake_conn, org, settings, forms, how, values, form):
    if how == "encoded" and form == "binary":
        form = "encoded"
    errors = []
    for binary in (True, False):
        settings.SYNC_BINARY_COPY = binary
        with pytest.raises(Exception) as caught:  # the point: both forms raise the same
            _write(how, fake_conn, org, f"refused-{binary}", {"email": "a@example.com", **values})
        errors.append(caught.value)
    assert forms == [form, "text"]
    assert type(errors[0]) is type(errors[1]), errors
    assert isinstance(errors[0], (DataError, ValidationError)), errors[0]
    if isinstance(errors[0], DataError):
        # The NUL in text is refused by psycopg itself in text form, by the server in binary; every other
        # refusal is the server's both ways. Django's DataError both ways is what the engine acts on.
        assert isinstance(errors[0].__cause__, psycopg.DataError)
    assert not Customer.objects.filter(connection=fake_conn).exists()


def test_encode_parts_gives_the_bytes_of_encode_for_every_shape(fake_conn, org):
    """RowEncoder.encode_parts(base, values, tail, now) == encode({**base, **values, **tail}, now): for keys that
    override one another across the dicts, a field given by name and by attname, a relation given as a model,
    a key that is no field (None from both), and rows of another shape after the plan for one was made."""
    now = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
    encoder = bulk.RowEncoder.for_model(Customer)
    base = {"organization_id": org.pk, "connection_id": fake_conn.pk, "synced_at": now, "deleted_at": None}
    shapes = [
        (base, {**EXACT, "sync_hash": "h"}, {"external_id": "1"}),
        (base, {"synced_at": now + dt.timedelta(seconds=1), "email": "x@example.com"}, {"external_id": "2"}),
        (base, {"connection": fake_conn, "email": "y@example.com"}, {"external_id": "3"}),  # a model: its pk
        ({**base, "organization": org}, {"organization_id": org.pk, "first_name": "A"}, {"external_id": "4"}),
        (base, {"email": "z@example.com", "external_id": "ignored"}, {"external_id": "5"}),
        (base, {"no_such_field": 1}, {"external_id": "6"}),
        (base, {"username": 12345}, {"external_id": "7"}),  # another type: None from both
        (base, {}, {"external_id": "8"}),
    ]
    for _ in range(2):  # the second time round, every plan is made already
        for b, values, tail in shapes:
            assert encoder.encode_parts(b, values, tail, now) == encoder.encode({**b, **values, **tail}, now)
    assert encoder.encode_parts(base, {"no_such_field": 1}, {"external_id": "6"}, now) is None
    assert encoder.encode_parts(base, {"email": "a@example.com"}, {"external_id": "9"}, now) is not None


def test_a_sink_whose_rows_differ_is_encoded_from_its_own_rows(fake_conn, org):
    """TableSink.row_encoder gathers the row itself (encode_parts) only for TableSink's own _row/_base; a
    subclass that changes them (as ``write`` will use them) is encoded from its own rows."""
    import types

    from sync.sinks import TableSink

    class Upper(TableSink):
        @staticmethod
        def _row(base, external_id, values):
            return {**TableSink._row(base, external_id, values), "first_name": values["first_name"].upper()}

    now = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
    run = types.SimpleNamespace(model=Customer, connection=fake_conn)
    values = {"first_name": "ana", "email": "a@example.com", "sync_hash": "h"}
    encoder = bulk.RowEncoder.for_model(Customer)
    own = encoder.encode(Upper._row(Upper._base(fake_conn, now), "1", values), now)
    assert Upper().row_encoder(run)("1", values, now) == own
    assert TableSink().row_encoder(run)("1", values, now) != own


def test_the_encoder_s_row_base_follows_each_now(fake_conn, org):
    """TableSink.row_encoder keeps the base of the last ``now`` it was given (one per page): a record encoded
    with another ``now`` gets that one as its synced_at, exactly as encode of the full row gives it."""
    import types

    from sync.sinks import TableSink

    run = types.SimpleNamespace(model=Customer, connection=fake_conn)
    encode = TableSink().row_encoder(run)
    encoder = bulk.RowEncoder.for_model(Customer)
    values = {"first_name": "Ana", "email": "a@example.com", "sync_hash": "h"}
    t1 = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
    t2 = t1 + dt.timedelta(seconds=3)
    for now in (None, t1, t1, t2, t1):  # None first: the base is built for it too, not taken as cached
        expected = encoder.encode(TableSink._row(TableSink._base(fake_conn, now), "1", values), now)
        assert encode("1", values, now) == expected
    assert encode("1", values, t1) != encode("1", values, t2)
