"""_address returns a clean address as it is and copies any other, with what the copy always gave."""

from __future__ import annotations

import json
import pathlib

import pytest

from connectors.woocommerce.resources import _address

VENDOR = pathlib.Path(__file__).parents[1] / "fixtures" / "vendor" / "woocommerce"


def _copied(value):
    """The rule: text keys, each value as stripped text ('' for None), {} for anything but an object."""
    if not isinstance(value, dict):
        return {}
    return {str(k): ("" if v is None else str(v).strip()) for k, v in value.items()}


def test_a_clean_address_is_not_copied():
    address = {"first_name": "Ana", "city": "Madrid", "address_2": ""}
    assert _address(address) is address


@pytest.mark.parametrize(
    "value",
    [
        {"city": " Madrid "},  # blanks around a value
        {"city": "Madrid", "phone": None},
        {"city": "Madrid", "postcode": 28001},
        {1: "x", "city": "Madrid"},  # a key that is not text
        {"city": "Madrid\n"},
        None,
        "Calle Mayor 1",
        ["a"],
    ],
    ids=repr,
)
def test_any_other_value_is_copied_by_the_rule(value):
    got = _address(value)
    assert got == _copied(value)
    assert got is not value


def test_vendor_addresses_map_as_the_rule_says():
    seen = 0
    for path in sorted(VENDOR.glob("*.json")):
        body = json.loads(path.read_text())
        for record in body if isinstance(body, list) else [body]:
            if not isinstance(record, dict):
                continue
            for name in ("billing", "shipping"):
                if name in record:
                    assert _address(record[name]) == _copied(record[name]), (path.name, name)
                    seen += 1
    assert seen >= 4  # the published customers' and orders' addresses were read
