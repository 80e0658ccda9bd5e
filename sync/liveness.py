"""Selector: is a django-q2 worker (``manage.py qcluster``) alive?

Each running cluster's sentinel saves a Stat to the Django cache about every half second, with a 3-second
expiry; ``Stat.get_all()`` is django-q2's documented health check. That works across processes because
settings.CACHES is the database cache by default (shared by web and worker). With a per-process cache
(LocMemCache, DummyCache) no cluster can be seen, so the answer is "unknown" instead of a false alarm.
With Q_SYNC the web process runs tasks inline: no worker is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import caches

START_COMMAND = "python manage.py qcluster"


@dataclass(frozen=True)
class WorkerStatus:
    alive: bool | None  # None: cannot tell with this cache
    clusters: int = 0
    inline: bool = False  # Q_SYNC: tasks run in the web process
    detail: str = ""

    @property
    def needs_attention(self) -> bool:
        return self.alive is False


def worker_status() -> WorkerStatus:
    from django_q.conf import Conf
    from django_q.status import Stat

    if Conf.SYNC:
        return WorkerStatus(alive=True, inline=True, detail="tasks run inline (Q_SYNC)")
    backend = type(caches[Conf.CACHE]).__name__
    if backend in ("LocMemCache", "DummyCache"):
        return WorkerStatus(alive=None, detail=f"the {backend} cache is per process: worker status unknown")
    try:
        stats = Stat.get_all()
    except Exception as exc:  # a missing cache table must not take the console down
        return WorkerStatus(alive=None, detail=f"cannot read worker status: {type(exc).__name__}")
    running = [s for s in stats if s.status in (Conf.STARTING, Conf.WORKING, Conf.IDLE)]
    return WorkerStatus(alive=bool(running), clusters=len(running))
