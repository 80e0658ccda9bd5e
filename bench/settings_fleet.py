"""Bench-only settings for B9 (bench/fleet.py): the project's settings, django-q2 saving every result (so the
bench counts finished tasks), and the Redis broker when BENCH_BROKER=redis (branch i19-ops adds Q_REDIS_URL
to the real settings; this keeps B9 independent of it)."""

import os

os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdC1rZXktZm9yLWZpZWxkLWVuY3J5cHRpb24tMzI=")
os.environ.setdefault("OUTBOUND_ALLOW_LOOPBACK", "true")

from config.settings import *  # noqa: F403

ALLOWED_HOSTS = ["*"]
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
Q_CLUSTER = {**Q_CLUSTER, "name": "b9", "save_limit": 0, "sync": False}  # noqa: F405
if os.environ.get("BENCH_BROKER") == "redis":
    # Without Q_REDIS_URL the project's settings chose the ORM broker ("orm", "broker_class"), and django-q2
    # picks those before "redis": drop them, or the "redis" figures measure the ORM broker (as they did
    # before this line was added).
    Q_CLUSTER = {k: v for k, v in Q_CLUSTER.items() if k not in ("orm", "broker_class")}
    Q_CLUSTER["redis"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
elif os.environ.get("BENCH_BROKER") == "orm-django-q2":
    Q_CLUSTER.pop("broker_class", None)  # django-q2's own ORM dequeue, for comparison
