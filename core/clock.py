"""One place for "now" and "sleep", so tests can drive time instead of waiting for it."""

from __future__ import annotations

import datetime as dt
import threading
import time


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to (or when something sleeps on it)."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self._mono = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if seconds > 0:
                self._now += dt.timedelta(seconds=seconds)
                self._mono += seconds

    advance = sleep

    def set(self, when: dt.datetime) -> None:
        """Jump to an absolute time (e.g. past a lease written by another process on the real clock)."""
        with self._lock:
            self._now = when


_clock: SystemClock | FakeClock = SystemClock()


def get() -> SystemClock | FakeClock:
    return _clock


def set_clock(clock: SystemClock | FakeClock) -> None:
    global _clock
    _clock = clock


def now() -> dt.datetime:
    return _clock.now()


def sleep(seconds: float) -> None:
    _clock.sleep(seconds)


def monotonic() -> float:
    return _clock.monotonic()
