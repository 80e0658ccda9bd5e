"""Process setup shared by the connector benchmarks: environment, a fresh PostgreSQL database, Django."""

from __future__ import annotations

import base64
import os
import platform
import secrets
import statistics
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/synchub_bench2"


def configure_env() -> None:
    """Environment for this process and every subprocess it starts (runserver, qcluster, migrate)."""
    os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["OUTBOUND_ALLOW_LOOPBACK"] = "true"
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    os.environ.setdefault("Q_SYNC", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("THROTTLE_SYNC_TRIGGER", "100000/min")


def _admin_dsn(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(
        (
            parts.scheme.replace("postgres", "postgresql", 1) if parts.scheme == "postgres" else parts.scheme,
            parts.netloc,
            "/postgres",
            "",
            "",
        )
    )
    return admin, name


def fresh_database() -> None:
    """Drop + create the benchmark database, then migrate it in a subprocess (the real `manage.py migrate`)."""
    import psycopg

    url = os.environ["DATABASE_URL"]
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench_connectors needs PostgreSQL: set DATABASE_URL=postgres://...")
    admin, name = _admin_dsn(url)
    if not name.startswith("synchub_bench"):
        raise SystemExit(f"refusing to drop {name!r}: benchmark databases are named synchub_bench*")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    for cmd in (["migrate", "--noinput", "-v0"], ["createcachetable", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *cmd], cwd=BASE_DIR, check=True, env=os.environ.copy())


def django_setup() -> None:
    import django

    django.setup()


def org_and_staff(slug: str = "bench"):
    """The organization and a staff member of it (plus a DRF token for live-server calls)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from sync.models import Membership, Organization

    org, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": f"Bench {slug}"})
    User = get_user_model()
    user = User.objects.filter(username=f"{slug}-staff").first() or User.objects.create_user(
        f"{slug}-staff", password=secrets.token_urlsafe(12), is_staff=True
    )
    Membership.objects.get_or_create(user=user, organization=org, defaults={"role": "admin"})
    token, _ = Token.objects.get_or_create(user=user)
    return org, user, token.key


def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pg = ""
    try:
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            pg = cur.fetchone()[0]
    except Exception as exc:  # reported, not fatal
        pg = f"unknown ({exc.__class__.__name__})"
    return {
        "cpus": str(os.cpu_count()),
        "cpu model": model or platform.processor(),
        "python": platform.python_version(),
        "postgres": pg,
        "platform": platform.platform(),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]
