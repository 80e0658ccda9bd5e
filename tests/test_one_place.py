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
