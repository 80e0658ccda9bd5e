"""The ineligible-items read path: a per-process in-memory copy of the S3 export.

How invalidation reaches every process: a successful export writes a new *version* (run id + ETag) to the
shared Django cache (CACHES default: the database cache, or Redis). Each process remembers the version its
copy was loaded under and compares it with the shared one before serving; a mismatch reloads from S3.
If S3 cannot be read, the last good copy is served (marked stale) and S3 is retried after
MDM_CACHE_RETRY_SECONDS, so a dead S3 does not cost every request a timeout."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field

from django.core.cache import cache

from core import clock

from . import conf, storage

log = logging.getLogger("synchub.mdm")


class ItemsUnavailable(Exception):
    """No copy in memory and S3 cannot give one (never exported, or unreachable)."""


@dataclass(frozen=True)
class Snapshot:
    items: list[dict] = field(default_factory=list)
    version: str | None = None
    etag: str = ""
    loaded_at: dt.datetime | None = None
    stale: bool = False
    last_error: str = ""

    @property
    def count(self) -> int:
        return len(self.items)

    def age_seconds(self, now: dt.datetime | None = None) -> float | None:
        return None if self.loaded_at is None else ((now or clock.now()) - self.loaded_at).total_seconds()


def shared_version() -> str | None:
    try:
        return cache.get(conf.VERSION_CACHE_KEY)
    except Exception:  # the shared cache down: keep serving what we have
        log.warning("could not read the ineligible-items version from the shared cache", exc_info=True)
        return None


def bump_version(version: str) -> None:
    """Called after a good export: every process sees the new version on its next read."""
    cache.set(conf.VERSION_CACHE_KEY, version, timeout=None)


class ItemsCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._retry_at: float | None = None

    def get(self) -> Snapshot:
        # Read the version BEFORE loading: if an export lands in between, we label new data with the old
        # version and merely reload once more; we never label old data with the new version.
        version = shared_version()
        with self._lock:
            current = self._snapshot
            if current is not None and current.version == version:
                return current
            if current is not None and self._retry_at is not None and clock.monotonic() < self._retry_at:
                return current
            try:
                document, etag = storage.get_json(storage.default_target())
            except storage.S3Error as exc:
                self._retry_at = clock.monotonic() + conf.MDM_CACHE_RETRY_SECONDS
                log.warning(
                    "ineligible items: S3 load failed (%s); %s",
                    exc,
                    "serving the last good copy" if current else "no copy to serve",
                )
                if current is None:
                    raise ItemsUnavailable(str(exc)) from None
                self._snapshot = Snapshot(
                    current.items, current.version, current.etag, current.loaded_at, stale=True, last_error=str(exc)
                )
                return self._snapshot
            items = document.get("items") if isinstance(document, dict) else None
            if not isinstance(items, list):
                raise ItemsUnavailable("the S3 export has no items list")
            self._retry_at = None
            self._snapshot = Snapshot(items, version, etag, clock.now())
            log.info("ineligible items loaded: %s item(s), version=%s etag=%s", len(items), version, etag)
            return self._snapshot

    def peek(self) -> Snapshot | None:
        """What this process holds, without touching S3 (for status displays)."""
        return self._snapshot

    def clear(self) -> None:
        with self._lock:
            self._snapshot = None
            self._retry_at = None


ITEMS_CACHE = ItemsCache()
