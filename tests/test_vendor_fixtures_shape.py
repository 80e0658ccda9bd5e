"""Every vendor fixture parses and names its source in SOURCES.md (a fixture without a source fails).

Only shape and provenance here; tests that feed these payloads to our mappers live with the connectors."""

from __future__ import annotations

import json
import re

import pytest

from tests import vendor_fixtures as vf

CASES = [(vendor, filename) for vendor in vf.vendors() for filename in vf.files(vendor)]


def _sources(vendor: str) -> str:
    path = vf.ROOT / vendor / "SOURCES.md"
    assert path.is_file(), f"{vendor}/ has no SOURCES.md"
    return path.read_text(encoding="utf-8")


def test_there_are_fixtures():
    assert {"woocommerce", "tiendanube", "lightspeed"} <= set(vf.vendors())
    assert all(vf.names(vendor) for vendor in vf.vendors())


@pytest.mark.parametrize(("vendor", "filename"), CASES, ids=[f"{v}/{f}" for v, f in CASES])
def test_fixture_parses_and_has_a_source(vendor, filename):
    data = vf.raw(vendor, filename)
    assert data, "empty fixture"
    if filename.endswith(".json"):
        parsed = json.loads(data.decode("utf-8"))
        assert isinstance(parsed, dict | list)
        assert vf.load(vendor, filename[: -len(".json")]) == parsed
    else:
        data.decode("utf-8")
    # Each fixture has its own heading in SOURCES.md: "## `<file name>`".
    heading = re.compile(rf"^## `{re.escape(filename)}`\s*$", re.MULTILINE)
    assert heading.search(_sources(vendor)), f"{vendor}/{filename} is not listed in {vendor}/SOURCES.md"


@pytest.mark.parametrize("vendor", vf.vendors())
def test_sources_list_no_missing_files(vendor):
    listed = set(re.findall(r"^## `([^`]+)`\s*$", _sources(vendor), re.MULTILINE))
    assert listed <= set(vf.files(vendor)), (
        f"SOURCES.md lists files that do not exist: {listed - set(vf.files(vendor))}"
    )
