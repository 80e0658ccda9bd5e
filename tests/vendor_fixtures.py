"""Load the vendor-published example payloads in ``tests/fixtures/vendor/<vendor>/``.

These are data copied from the vendors' own documentation (see ``tests/fixtures/vendor/README.md`` and each
vendor's ``SOURCES.md``), never derived from our client code. ``load`` returns the parsed JSON; ``raw``
returns the bytes of any fixture file (for non-JSON bodies such as WooCommerce's form-encoded ping).
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "fixtures" / "vendor"


def vendors() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def _dir(vendor: str) -> Path:
    path = ROOT / vendor
    if not path.is_dir() or path.parent != ROOT:
        raise FileNotFoundError(f"no vendor fixtures for {vendor!r}")
    return path


def names(vendor: str) -> list[str]:
    """The JSON fixtures of one vendor, by name (file name without ``.json``)."""
    return sorted(p.stem for p in _dir(vendor).glob("*.json"))


def files(vendor: str) -> list[str]:
    """Every fixture file of one vendor (JSON or not), by file name; SOURCES.md excluded."""
    return sorted(p.name for p in _dir(vendor).iterdir() if p.is_file() and p.name != "SOURCES.md")


def load(vendor: str, name: str) -> dict | list:
    path = _dir(vendor) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no fixture {vendor}/{name}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def raw(vendor: str, filename: str) -> bytes:
    path = _dir(vendor) / filename
    if not path.is_file() or path.parent != _dir(vendor):
        raise FileNotFoundError(f"no fixture file {vendor}/{filename}")
    return path.read_bytes()
