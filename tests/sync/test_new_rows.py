"""bulk.NewRows: a first sync's rows prepared from the mapped values without building each row's dict
(bulk._new_row_values) must give, value for value, what the usual path gives (TableSink._row's dicts through
bulk._tuples), and raise what it raises. The reference is the usual path itself; the values come from the
vendors' published example records (tests/fixtures/vendor) mapped by each connector's own mapper, and from
hand-made edge cases."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import transaction
from django.forms.models import model_to_dict

from customers.models import Customer, LoyaltyTier
from sync import bulk
from sync.registry import get_resource
from sync.sinks import TableSink
from tests import vendor_fixtures

NOW = dt.datetime(2026, 12, 4, 19, 0, 0, 250000, tzinfo=dt.UTC)

# (vendor, fixture, connector kind, resource): published list payloads, mapped as a sync maps them.
VENDOR_LISTS = [
    ("woocommerce", "customers_list", "woocommerce", "customers"),
    ("woocommerce", "orders_list", "woocommerce", "orders"),
    ("woocommerce", "products_list", "woocommerce", "products"),
    ("woocommerce", "coupons_list", "woocommerce", "coupons"),
    ("tiendanube", "customers_list", "tiendanube", "customers"),
    ("tiendanube", "orders_list", "tiendanube", "orders"),
    ("tiendanube", "products_list", "tiendanube", "products"),
    ("lightspeed", "customers_list", "lightspeed", "customers"),
    ("lightspeed", "products_list", "lightspeed", "products"),
]


def _typed(rows):
    """Each value with its type and repr: True and 1, or Decimal("3") and 3, compare equal but are not."""
    return [[(type(value), repr(value), value) for value in row] for row in rows]


def _usual(model, base, key, pairs):
    return _typed(bulk._tuples(model, [{**base, **values, key: ext} for ext, values in pairs]))


def _fused(model, base, key, pairs):
    return _typed(bulk._new_row_values(model, bulk.NewRows(base, key, pairs)))


def _stored(conn) -> dict:
    """Every row of ``conn`` as Django reads it back, by external id."""
    return {
        c.external_id: model_to_dict(c, exclude=("id", "connection")) for c in Customer.objects.filter(connection=conn)
    }


def _base(org_id=7, conn_id=9):
    return {"organization_id": org_id, "connection_id": conn_id, "synced_at": NOW, "deleted_at": None}


@pytest.mark.django_db
@pytest.mark.parametrize("vendor,fixture,kind,name", VENDOR_LISTS, ids=[f"{v}-{f}" for v, f, _, _ in VENDOR_LISTS])
def test_vendor_records_prepare_as_the_usual_path(vendor, fixture, kind, name):
    resource = get_resource(kind, name)
    model = apps.get_model(resource.model)
    data = vendor_fixtures.load(vendor, fixture)
    records = data["data"] if isinstance(data, dict) else data
    pairs = []
    for record in records:
        values = resource.map(record)
        values["sync_version"], values["sync_hash"] = "v1", "ab" * 16
        pairs.append((resource.external_id(record), values))
    assert pairs, "the fixture has records"
    assert _fused(model, _base(), "external_id", pairs) == _usual(model, _base(), "external_id", pairs)


class _Reversed(dict):
    def __iter__(self):
        return reversed(list(dict.__iter__(self)))


EDGE_VALUES = {
    "text": {"first_name": 'F "quoted" \\ ñ 東京 🙂', "last_name": "o'brien", "company": "%s and %(x)s"},
    "json": {"billing": {"city": "Ñuñoa", "n": 7, "nested": [None, True, 1.5, {"k": "v"}]}, "extra": {}},
    "json null": {"billing": None, "shipping": [], "extra": "a string"},
    "bool and decimal": {"is_paying_customer": True, "loyalty_balance": Decimal("12.125")},
    "times": {
        "upstream_created_at": dt.datetime(2024, 5, 1, 10, 30, 15, 123456, tzinfo=dt.UTC),
        "upstream_updated_at": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
    },
    "naive time": {"upstream_created_at": dt.datetime(2024, 5, 1, 10, 30)},
    "nones": {"first_name": None, "loyalty_balance": None, "upstream_updated_at": None, "billing": None},
    "a related object": {"connection": "CONNECTION"},  # replaced by a saved Connection below
    "base overridden": {"synced_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "deleted_at": NOW, "email": "o@x.io"},
    "a field by name and by attname": {"organization": "ORG", "organization_id": "OTHER ID", "email": "both@x.io"},
    "a model object in a column that is no relation": {"company": "ORG", "is_paying_customer": 1},
    "a dict subclass": "REVERSED",
    "the key among the values": {"external_id": "from-values", "email": "k@x.io"},
    "keys in another order": {"sync_hash": "cd" * 16, "email": "z@x.io", "first_name": "Zed"},
}


@pytest.mark.django_db
@pytest.mark.parametrize("values", EDGE_VALUES.values(), ids=EDGE_VALUES.keys())
def test_edge_values_prepare_as_the_usual_path(values, org, make_connection):
    conn = make_connection(org, kind="fake", name="edge")
    if values == "REVERSED":  # iterates its keys backwards; its values() does not
        values = _Reversed(email="r@x.io", first_name="R", sync_hash="ef" * 16)
    else:
        stand_ins = {"CONNECTION": conn, "ORG": org, "OTHER ID": org.pk + 1000}
        values = {k: stand_ins[v] if isinstance(v, str) and v in stand_ins else v for k, v in values.items()}
    # Mixed on purpose: rows of another key set before and after, so plans change within one call.
    pairs = [
        ("1", {"email": "a@x.io", "first_name": "A"}),
        ("2", values),
        ("3", {"first_name": "C", "email": "c@x.io"}),
        ("4", values),  # the same dict again
    ]
    assert _fused(Customer, _base(org.pk, conn.pk), "external_id", pairs) == _usual(
        Customer, _base(org.pk, conn.pk), "external_id", pairs
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "related",
    [("connection", "organization"), ("connection", "connection_id"), ("connection_id", "organization_id")],
    ids=["objects", "one column by name and by attname", "keys"],
)
def test_related_values_outside_the_base_prepare_as_the_usual_path(related, org, make_connection):
    """Relations the base does not set: given as objects (stored as their keys), as keys, or one column by
    both its name and its attname (the later one wins, as in the dict)."""
    conn = make_connection(org, kind="fake", name="rel")
    given = {"connection": conn, "organization": org, "connection_id": conn.pk + 1000, "organization_id": org.pk}
    pairs = [("1", {"email": "a@x.io", **{name: given[name] for name in related}}), ("2", {"email": "b@x.io"})]
    base = {"synced_at": NOW}
    usual = _usual(Customer, base, "external_id", pairs)
    assert _fused(Customer, base, "external_id", pairs) == usual
    if related == ("connection", "organization"):
        positions = bulk._layout(Customer)[1]
        stored = (usual[0][positions["connection"]][2], usual[0][positions["organization"]][2])
        assert stored == (conn.pk, org.pk)


@pytest.mark.django_db
def test_a_base_value_the_rows_replace_and_an_empty_group(org):
    """A base value that cannot be prepared fails no row whose values replace it, and no empty group."""
    base = {"organization_id": org.pk, "synced_at": "not a time"}
    pairs = [("1", {"email": "a@x.io", "synced_at": NOW}), ("2", {"email": "b@x.io", "synced_at": None})]
    assert _fused(Customer, base, "external_id", pairs) == _usual(Customer, base, "external_id", pairs)
    assert _fused(Customer, base, "external_id", []) == [] == _usual(Customer, base, "external_id", [])


@pytest.mark.django_db
def test_a_related_key_is_stored_as_its_key(org, make_connection):
    conn = make_connection(org, kind="fake", name="key")
    pairs = [(conn, {"email": "a@x.io"})]
    base = {"organization_id": org.pk, "synced_at": NOW}
    usual = _usual(Customer, base, "connection", pairs)
    assert _fused(Customer, base, "connection", pairs) == usual
    assert usual[0][bulk._layout(Customer)[1]["connection"]][2] == conn.pk


@pytest.mark.django_db
def test_a_key_column_that_needs_preparing_is_prepared():
    """The key's column is prepared as any other: a time key stands in for such a key here (prepared as text
    on either database); on SQLite an integer one too (Django's own preparation turns "3" into 3)."""
    when = dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC)
    pairs = [(when, {"name": "Gold", "code": "G"}), (None, {"name": "none"})]
    usual = _usual(LoyaltyTier, _base(), "upstream_created_at", pairs)
    assert _fused(LoyaltyTier, _base(), "upstream_created_at", pairs) == usual
    at = bulk._layout(LoyaltyTier)[1]["upstream_created_at"]
    assert usual[0][at][0] is str
    pairs = [("3", {"name": "Gold", "code": "G"}), (4, {"name": "Silver"})]
    assert _fused(LoyaltyTier, _base(), "rank", pairs) == _usual(LoyaltyTier, _base(), "rank", pairs)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad",
    [
        {"no_such_field": 1},
        {"loyalty_balance": "lots"},
        {"loyalty_balance": "lots", "upstream_created_at": "not a time"},
        {"billing": {1j: "complex"}},
    ],
    ids=["unknown field", "a bad decimal", "two bad values", "unencodable json"],
)
def test_a_bad_value_raises_what_the_usual_path_raises(bad):
    pairs = [("1", {"email": "a@x.io"}), ("2", {"email": "b@x.io", **bad})]
    with pytest.raises(Exception) as usual:
        _usual(Customer, _base(), "external_id", pairs)
    with pytest.raises(Exception) as fused:
        _fused(Customer, _base(), "external_id", pairs)
    assert type(fused.value) is type(usual.value)
    assert str(fused.value) == str(usual.value)


@pytest.mark.django_db
def test_a_base_naming_no_field_raises_what_the_usual_path_raises():
    base = {**_base(), "nope": 1}
    pairs = [("1", {"email": "a@x.io"})]
    with pytest.raises(TypeError, match="no field named 'nope'"):
        _usual(Customer, base, "external_id", pairs)
    with pytest.raises(TypeError, match="no field named 'nope'"):
        _fused(Customer, base, "external_id", pairs)


def test_new_rows_reads_as_the_list_of_its_dicts():
    rows = bulk.NewRows({"a": 1, "b": 2}, "k", [("x", {"b": 3, "c": 4}), ("y", {})])
    expected = [{"a": 1, "b": 3, "c": 4, "k": "x"}, {"a": 1, "b": 2, "k": "y"}]
    assert len(rows) == 2
    assert list(rows) == expected
    assert [rows[0], rows[1]] == expected
    assert rows[1:] == expected[1:]


@pytest.mark.django_db(transaction=True)
def test_insert_new_stores_the_same_rows_either_way(org, make_connection, monkeypatch):
    """On the database: NewRows and the list of its dicts leave the same rows (every column, as Django reads
    them back), in chunks split as a big group's would be."""
    n_columns = len(bulk._layout(Customer)[0])
    monkeypatch.setattr(bulk, "_sqlite_max_params", lambda: 2 * n_columns + 1)
    by_list, by_new = (make_connection(org, kind="fake", name=n) for n in ("list", "new"))
    stored_cases = ["text", "json", "bool and decimal", "times", "naive time", "keys in another order"]
    pairs = [(str(i), {"email": f"c{i}@example.com", **EDGE_VALUES[name]}) for i, name in enumerate(stored_cases)]
    with transaction.atomic():
        rows = bulk.NewRows(_base(org.pk, by_list.pk), "external_id", pairs)
        assert bulk.insert_new(Customer, list(rows)) == 6
        assert bulk.insert_new(Customer, bulk.NewRows(_base(org.pk, by_new.pk), "external_id", pairs)) == 6

    assert len(_stored(by_new)) == 6
    assert _stored(by_new) == _stored(by_list)


class _OwnRow(TableSink):
    @staticmethod
    def _row(base, external_id, values):
        return {**TableSink._row(base, external_id, values), "customer_code": "mine"}


@pytest.mark.parametrize(
    "sink,values,takes_new_rows",
    [
        (TableSink(), {"email": "a@x.io", "sync_hash": "ab" * 16}, True),
        (TableSink(), {"email": "a@x.io"}, False),  # _row adds the content hash
        (_OwnRow(), {"email": "a@x.io", "sync_hash": "ab" * 16}, False),  # a subclass's own rows
    ],
    ids=["own rows", "no hash", "a subclass's rows"],
)
def test_table_sink_hands_new_rows_only_where_they_equal_its_rows(sink, values, takes_new_rows, monkeypatch):
    given = []
    monkeypatch.setattr(bulk, "insert_new", lambda model, rows: given.append(rows) or len(rows))

    class Line:
        external_id = "1"

    class Run:
        model, insert_only, encoded_rows = Customer, True, None

        class connection:
            organization_id, pk = 1, 2

    sink.write(Run(), [(Line(), values)], [], NOW)
    (rows,) = given
    assert isinstance(rows, bulk.NewRows) is takes_new_rows
    expected = sink._row(sink._base(Run.connection, NOW), "1", values)
    assert list(rows) == [expected]


# --- SQLite's rows prepared ahead (bulk.NewRowEncoder, TableSink.row_encoder) for a fetch process ------------


def _encoder_run(org_id=7, conn_id=9):
    class Run:
        model = Customer

        class connection:
            organization_id, pk = org_id, conn_id

    return Run()


@pytest.mark.django_db
@pytest.mark.parametrize("values", EDGE_VALUES.values(), ids=EDGE_VALUES.keys())
def test_sqlite_rows_encoded_ahead_are_the_rows_insert_new_binds(values, org, make_connection):
    """What TableSink.row_encoder gives on SQLite for each record is, value for value and type for type, what
    insert_new would bind for it (NewRows), or None where that raises (its group then takes insert_new)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's encoder; PostgreSQL's is tests/sync/test_binary_copy.py's")
    conn = make_connection(org, kind="fake", name="edge")
    if values == "REVERSED":
        values = _Reversed(email="r@x.io", first_name="R", sync_hash="ef" * 16)
    else:
        stand_ins = {"CONNECTION": conn, "ORG": org, "OTHER ID": org.pk + 1000}
        values = {k: stand_ins[v] if isinstance(v, str) and v in stand_ins else v for k, v in values.items()}
        values.setdefault("sync_hash", "ab" * 16)
    pairs = [("1", {"email": "a@x.io", "sync_hash": "01" * 16}), ("2", values), ("3", values)]
    encode = TableSink().row_encoder(_encoder_run(org.pk, conn.pk))
    encoded = [encode(ext, v, NOW) for ext, v in pairs]
    base = TableSink._base(_encoder_run(org.pk, conn.pk).connection, NOW)
    try:
        expected = _usual(Customer, base, "external_id", pairs)  # TableSink._row's dicts through bulk._tuples
    except Exception:
        assert encoded[1] is None and encoded[2] is None  # the usual way raises it where it always did
        return
    assert _typed(encoded) == expected


@pytest.mark.django_db
def test_sqlite_row_encoder_leaves_values_without_a_hash_and_other_sinks_rows_to_write():
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's encoder")
    encode = TableSink().row_encoder(_encoder_run())
    assert encode("1", {"email": "a@x.io"}, NOW) is None  # _row adds a content hash: write's own way
    assert encode("1", {"email": "a@x.io", "sync_hash": "ab" * 16}, NOW) is not None
    assert _OwnRow().row_encoder(_encoder_run()) is None  # a subclass's rows are its own


@pytest.mark.django_db(transaction=True)
def test_rows_encoded_ahead_store_what_insert_new_stores(org, make_connection, monkeypatch):
    """On either database: the rows TableSink.row_encoder gives, written by insert_encoded, leave the rows
    insert_new leaves (every column, as Django reads them back), in chunks split as a big group's would be."""
    from django.db import connection

    n_columns = len(bulk._layout(Customer)[0])
    monkeypatch.setattr(bulk, "_sqlite_max_params", lambda: 2 * n_columns + 1)
    by_new, by_encoded = (make_connection(org, kind="fake", name=n) for n in ("new", "encoded"))
    cases = ["text", "json", "bool and decimal", "times", "naive time", "keys in another order", "text"]
    if connection.vendor == "postgresql":  # a naive time is not COPYed in binary (bulk._BinaryChecks): not encoded
        cases[cases.index("naive time")] = "json"
    pairs = [
        (str(i), {"email": f"c{i}@example.com", "sync_hash": "ab" * 16, **EDGE_VALUES[name]})
        for i, name in enumerate(cases)
    ]
    encode = TableSink().row_encoder(_encoder_run(org.pk, by_encoded.pk))
    encoded = [encode(ext, values, NOW) for ext, values in pairs]
    assert None not in encoded
    with transaction.atomic():
        assert bulk.insert_new(Customer, bulk.NewRows(_base(org.pk, by_new.pk), "external_id", pairs)) == 7
        assert bulk.insert_encoded(Customer, encoded) == 7

    assert len(_stored(by_encoded)) == 7
    assert _stored(by_encoded) == _stored(by_new)
