"""Review of issue 15 ("repeated logic between connectors lives in one place"): HTTP dates are parsed by
core.timestamps only; connectors call it instead of carrying their own copy."""

import datetime as dt
import pathlib

from core.timestamps import parse_http_date, parse_retry_after


def test_http_dates_are_parsed_in_core_timestamps_only():
    offenders = [
        str(path)
        for root in ("connectors", "sync", "customers", "commerce", "ops")
        for path in pathlib.Path(root).rglob("*.py")
        if "parsedate" in path.read_text()
    ]
    assert offenders == []


def test_parse_http_date():
    assert parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT") == dt.datetime(2015, 10, 21, 7, 28, tzinfo=dt.UTC)
    assert parse_http_date("Wed, 21 Oct 2015 09:28:00 +0200") == dt.datetime(2015, 10, 21, 7, 28, tzinfo=dt.UTC)
    assert parse_http_date("soon") is None and parse_http_date("") is None and parse_http_date(None) is None
    now = dt.datetime(2015, 10, 21, 7, 27, tzinfo=dt.UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 60.0


def test_every_connector_setting_is_read_somewhere():
    """A conf.py constant nobody reads is a knob that does nothing (left behind when its code moved)."""
    import re

    sources = {
        path: path.read_text()
        for root in ("connectors", "sync", "core", "customers", "commerce", "ops", "config")
        for path in pathlib.Path(root).rglob("*.py")
        if "migrations" not in path.parts
    }
    unread = []
    for conf in pathlib.Path("connectors").glob("*/conf.py"):
        lines = sources[conf].splitlines()
        for name in re.findall(r"^([A-Z][A-Z0-9_]+)\s*[:=]", sources[conf], flags=re.M):
            # Uses in its own module, other than the line that defines it (env("X") names itself there).
            inside = [line for line in lines if re.search(rf"\b{name}\b", line) and not line.startswith(name)]
            outside = any(re.search(rf"\b{name}\b", text) for path, text in sources.items() if path != conf)
            if not inside and not outside:
                unread.append(f"{conf}: {name}")
    assert unread == []
