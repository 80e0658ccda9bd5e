"""The per-record helpers a sync calls for every record, against their plain definitions: bulk.source_hash
(SHA-256 of the revision and the record's sorted JSON, from a kept per-revision state) and
core.timestamps.parse_upstream_datetime (a dict cache in front of the parse)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import orjson
import pytest

from core import timestamps
from core.errors import MappingError
from sync import bulk


def _plain_hash(record, revision: bytes) -> str:
    blob = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(revision + blob).hexdigest()[:32]


def test_source_hash_is_sha256_of_revision_and_sorted_record_for_every_revision():
    record = {"z": 1, "a": {"y": [1, 2, "é"], "b": None}, "m": "text"}
    assert (
        orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        == json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    # More revisions than the kept states (64): each still hashes from its own revision, the same each time.
    revisions = [f"rev-{i}".encode() for i in range(150)]
    first = [bulk.source_hash(record, r) for r in revisions]
    assert first == [_plain_hash(record, r) for r in revisions]
    assert [bulk.source_hash(record, r) for r in reversed(revisions)] == first[::-1]
    assert len(set(first)) == len(revisions)
    assert len(bulk._REVISION_STATES) <= 64  # the kept states stay bounded
    assert bulk.source_hash({**record, "z": 2}, revisions[0]) != first[0]


def test_source_hash_of_what_orjson_refuses_falls_back_to_the_standard_library():
    record = {"id": 2**80, "name": "big"}
    expected = hashlib.sha256(b"r" + json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:32]
    assert bulk.source_hash(record, b"r") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-01-02T03:04:05", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        ("2024-01-02T03:04:05Z", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        ("2024-01-02T05:04:05+02:00", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
    ],
)
def test_parse_upstream_datetime_gives_aware_utc_the_same_each_time(text, expected):
    for _ in range(2):  # the second call is served by the cache
        parsed = timestamps.parse_upstream_datetime(text)
        assert parsed == expected and parsed.tzinfo is dt.UTC


_TEXTS = [
    "2024-01-02T03:04:05",
    "2024-02-29T23:59:59",
    "2024-01-02T0304+01",  # 19 characters with "T" at 10 that carry their own offset
    "20240102T030405.123",  # the basic form, 19 characters
    "2024-01-02T03:04:5Z",
    "2024-01-02X03:04:05",
    "2024-01-02 03:04:05",
    "2024-01-02T03:04:05.123456",
    "2024-01-02T03:04:05Z",
    "2024-01-02T03:04:05.5Z",
    "2024-01-02T05:04:05+02:00",
    "2024-01-01T22:04:05-05:00",
    "2024-01-02",
    "20240102T030405Z",
    "2024-01-02T03:04",
]


def _reads(text):
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("text", [t for t in _TEXTS if _reads(t)])
def test_a_miss_and_a_hit_both_give_what_the_standard_library_reads(text, monkeypatch):
    """The reference: the standard library's own reading of the text, "Z" as UTC, naive as UTC."""
    reference = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    reference = reference.replace(tzinfo=dt.UTC) if reference.tzinfo is None else reference.astimezone(dt.UTC)
    monkeypatch.setattr(timestamps, "_utc_parsed", {})
    miss = timestamps.parse_upstream_datetime(text)
    hit = timestamps.parse_upstream_datetime(text)
    assert miss == hit == reference
    assert miss.tzinfo is dt.UTC and hit.tzinfo is dt.UTC
    # The usual form is read each time (no cache); any other text is cached after its first reading.
    if not (len(text) == 19 and text[10] == "T"):
        assert hit is miss and timestamps._utc_parsed[text] is miss
    assert (miss.fold, miss.utcoffset()) == (0, dt.timedelta(0))


def test_every_second_of_a_day_in_the_usual_form_reads_as_the_standard_library_reads(monkeypatch):
    """The usual form's fast reading against the general one, over a day of seconds and month ends."""
    monkeypatch.setattr(timestamps, "_utc_parsed", {})
    start = dt.datetime(2023, 12, 31, 12)
    for i in range(0, 86_400 * 2, 7):
        text = (start + dt.timedelta(seconds=i)).isoformat()
        assert len(text) == 19
        expected = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
        assert timestamps.parse_upstream_datetime(text) == expected


@pytest.mark.parametrize(
    "text",
    ["not a date", "2024-13-01T00:00:00", "2024-01-02T03:04:05ZZ", "Z", "2024-02-30T00:00:00", "2024-01-02T25:04:05"]
    + [t for t in _TEXTS if not _reads(t)],
)
def test_a_bad_text_raises_the_same_on_either_path(text):
    with pytest.raises(MappingError) as utc:
        timestamps.parse_upstream_datetime(text)
    with pytest.raises(MappingError) as local:
        timestamps.parse_upstream_datetime(text, assume_utc=False)
    assert str(utc.value) == str(local.value) == f"not a timestamp: {text[:40]!r}"


def test_a_bad_timestamp_raises_every_time_and_is_not_cached():
    for _ in range(2):
        with pytest.raises(MappingError):
            timestamps.parse_upstream_datetime("not a date")
    assert "not a date" not in timestamps._utc_parsed


def test_the_cache_stays_bounded_and_right(monkeypatch):
    monkeypatch.setattr(timestamps, "_UTC_PARSED_MAX", 8)
    monkeypatch.setattr(timestamps, "_utc_parsed", {})
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i in range(30):
        when = base + dt.timedelta(minutes=i)
        assert timestamps.parse_upstream_datetime(when.strftime("%Y-%m-%dT%H:%M:%SZ")) == when  # a cached form
        assert 1 <= len(timestamps._utc_parsed) <= 8


def test_naive_text_in_the_local_zone_is_not_served_from_the_utc_cache(monkeypatch):
    """``assume_utc=False`` reads a naive text in the process's local zone: with a zone other than UTC, the
    answer differs from the cached UTC one (the settings' TIME_ZONE is UTC, so the zone is set here)."""
    import time

    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    timestamps._parse_text.cache_clear()
    try:
        text = "2024-06-01T12:00:00"
        utc = timestamps.parse_upstream_datetime(text)
        local = timestamps.parse_upstream_datetime(text, assume_utc=False)
        assert utc == dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
        assert local == dt.datetime(2024, 6, 1, 16, tzinfo=dt.UTC)  # EDT is UTC-4 in June
    finally:
        monkeypatch.undo()
        time.tzset()
        timestamps._parse_text.cache_clear()
