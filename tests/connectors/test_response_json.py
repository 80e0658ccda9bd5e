"""connectors.base.response_json: orjson where it reads a body exactly as ``Response.json()`` would, the
standard library everywhere else (integers beyond 64 bits, NaN, other encodings, lone surrogates)."""

from __future__ import annotations

import hashlib
import json
import types

import orjson
import pytest
import requests

from connectors import base
from connectors.base import _long_integer, response_json


def _response(body: bytes | None, content_type: str = "application/json; charset=UTF-8") -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = body
    response.headers["Content-Type"] = content_type
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    return response


# (body, the value Response.json() gives); each must come out equal, and of the same types.
CASES = [
    (b'[{"id": 1, "email": "a@example.com", "total": "10.50", "paid": true, "note": null}]', None),
    (b'{"id": 18446744073709551616}', None),  # 2**64: orjson would give a float
    (b'{"id": -9223372036854775809}', None),  # below -2**63
    (b"[1,\n  123456789012345678901234567890]", None),
    (b"12345678901234567890123", None),  # the whole body
    (b'{"a": 18446744073709551615, "b": -9223372036854775808}', None),  # the 64-bit limits, exact either way
    (b'{"hash": "x/00000000000000000000000000000001", "frac": 0.1234567890123456789012}', None),
    (b'{"a": 1.0, "b": -0.0, "c": 1e-7, "d": 2.5e300}', None),
    (b'{"a": 1, "a": 2}', None),  # duplicate keys: the last wins in both
    (b'{"s": "\\ud800"}', None),  # a lone surrogate: orjson refuses, json keeps it
    (b"[NaN, Infinity]", None),
    (b'{"big": 1e400}', None),
    ('["\u00e9t\u00e9"]'.encode(), None),
    ('["\u00e9"]'.encode("utf-16"), "application/json"),  # another encoding, with its BOM
    (b'\xef\xbb\xbf{"bom": 1}', "application/json"),
    # A declared charset other than UTF-8 is honoured as Response.json() honours it (the review's cases).
    ('["\u00e9t\u00e9"]'.encode(), "application/json; charset=ISO-8859-1"),
    ('["\u00e9t\u00e9"]'.encode(), "text/plain"),  # requests reads text/* without a charset as Latin-1
    ('["\u00e9t\u00e9"]'.encode(), "application/json; charset=us-ascii"),
    (b"[1, 2]", "application/json; charset=utf-16"),
    ('["\u00e9"]'.encode(), "application/json; charset=utf8"),  # UTF-8 by another name: the fast path
]


@pytest.mark.parametrize(("body", "content_type"), CASES)
def test_reads_every_body_as_response_json_does(body, content_type):
    args = (body, content_type) if content_type else (body,)
    try:
        expected = _response(*args).json()
    except ValueError:
        with pytest.raises(ValueError):
            response_json(_response(*args))
        return
    got = response_json(_response(*args))
    assert got == expected or (json.dumps(got) == json.dumps(expected))  # NaN != NaN
    assert json.dumps(got) == json.dumps(expected)  # same types: an int stays an int, not 1.8e19


@pytest.mark.parametrize("body", [b"", None, b"{", b"<html>oops</html>", b'{"a": 1} x'])
def test_malformed_bodies_still_raise_value_error(body):
    with pytest.raises(ValueError):
        response_json(_response(body))


@pytest.mark.parametrize(
    "avatar",
    [
        lambda i: f"{i:032x}",  # zero-padded: a run of 19+ digits inside a string in every record
        # Gravatar's MD5 of the email, as WooCommerce sends it (the REST docs' example customer:
        # ".../avatar/8eb1b522f60d11fa897de1dc6351b7e8?s=96"): digits everywhere, no run of 19.
        lambda i: hashlib.md5(f"customer{i}@example.com".encode()).hexdigest(),
    ],
    ids=["zero-padded", "md5"],
)
def test_an_ordinary_page_is_parsed_by_orjson(monkeypatch, avatar):
    """The fast path is taken for a page like a WooCommerce store's (digit runs inside strings only)."""
    calls = []
    real = orjson.loads
    monkeypatch.setattr(base.orjson, "loads", lambda b: calls.append(len(b)) or real(b))
    monkeypatch.setattr(requests.Response, "json", lambda self, **kw: pytest.fail("fell back to Response.json()"))
    body = json.dumps(
        [
            {
                "id": i,
                "date_created_gmt": "2024-01-01T00:04:19",
                "avatar_url": f"https://secure.gravatar.com/avatar/{avatar(i)}?s=96",
                "phone": "1234567890123",
                "billing": {"postcode": "94103", "phone": "(555) 555-5555"},
            }
            for i in range(1, 101)
        ]
    ).encode()
    assert response_json(_response(body))[99]["id"] == 100
    assert calls == [len(body)]


@pytest.mark.parametrize(
    ("body", "long"),
    [
        (b"1234567890123456789", True),
        (b" -1234567890123456789", True),
        (b'{"a":\t-1234567890123456789}', True),
        (b"[0,1234567890123456789]", True),
        (b'{"a": 123456789012345678}', False),  # 18 digits: orjson holds it exactly
        (b'{"a": "1234567890123456789"}', False),  # a string
        (b'{"a": "x-1234567890123456789"}', False),
        (b'{"a": 0.1234567890123456789}', False),  # a fraction: a float either way
        (b'{"a": "b:1234567890123456789"}', True),  # a false yes: only the slower parse
        (b'{"iban": "IBAN: 2100 0418 4502 0005 1332"}', False),  # 20 digits only once the blanks are gone
        (b'{"card": "Ref: 4111-1111-1111-1111-111"}', False),  # nor once the minus signs are
        (b'{"u": "/00000000000000000000001", "n": 99999999999999999999}', True),  # the second run counts
        (b"\n\t 1234567890123456789", True),  # a number at the start, past blanks
        (b'{"a": [1, -2, 3]}', False),  # short numbers do not add up across blanks and signs
        (b'[{"id": 1, "u": "/avatar/000000000000000000000000000001a3"}]', False),  # a zero-padded id in a URL
    ],
)
def test_long_integer(body, long):
    assert _long_integer(body) is long


def test_a_body_nested_too_deeply_is_a_bad_page(monkeypatch):
    """Deeper than the parser goes: RecursionError is the page's fault (BadPage), never a crash of the run."""
    client = base.Client(types.SimpleNamespace(base_url="http://127.0.0.1:9/"))
    monkeypatch.setattr(client, "request", lambda *a, **kw: _response(b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(base.BadPage, match="nested too deeply"):
        client.get_json("/items")


def test_a_false_yes_of_the_guard_still_parses_to_the_same_values():
    """Digits a string splits by blanks after a ":" may read as a long number to the guard (allowed: it only
    costs the slower parse); what the body parses to does not change."""
    body = b'{"a": "b: 1234567890 123456789", "n": 7}'
    assert response_json(_response(body)) == {"a": "b: 1234567890 123456789", "n": 7}


def _ints(value):
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _ints(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _ints(item)


@pytest.mark.parametrize("seed", range(3))
def test_every_integer_orjson_cannot_hold_is_flagged(seed):
    """Against the standard library's reading of the body: any integer outside orjson's exact range (-2**63 ..
    2**64 - 1) makes _long_integer say yes, whatever surrounds it (blanks, signs, strings of digits nearby)."""
    import random

    rng = random.Random(seed)
    flagged = 0
    for _ in range(400):
        record = {
            "id": rng.choice([1, -7, 10 ** rng.randint(1, 25) + rng.randint(0, 9), -(10 ** rng.randint(17, 22))]),
            "digits": "".join(rng.choice("0123456789 ") for _ in range(rng.randint(0, 30))),
            "list": [rng.randint(-(2**70), 2**70) for _ in range(rng.randint(0, 3))],
            "f": rng.random() * 10 ** rng.randint(0, 25),
        }
        body = json.dumps([record], indent=rng.choice([None, 1, "\t"])).encode()
        beyond = any(not (-(2**63) <= i <= 2**64 - 1) for i in _ints(json.loads(body)))
        if beyond:
            flagged += 1
            assert _long_integer(body), body
        assert response_json(_response(body)) == json.loads(body)
    assert flagged > 100
