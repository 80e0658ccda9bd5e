"""Does a connection's domain table equal what the upstream holds now? A read for demos and checks: the
caller says what the upstream has (external id -> expected field values); this compares the live rows."""

from __future__ import annotations

from django.apps import apps

from .registry import get_resource


def table_differences(connection, resource: str, upstream: dict[str, dict]) -> list[str]:
    """Human-readable differences between the live rows of (connection, resource) and ``upstream``; [] when
    they are equal: the same external ids live, and each expected field equal."""
    model = apps.get_model(get_resource(connection.kind, resource).model)
    fields = sorted({name for values in upstream.values() for name in values})
    rows = {
        r["external_id"]: r
        for r in model.objects.filter(connection=connection, deleted_at__isnull=True).values("external_id", *fields)
    }
    diffs = [f"{resource} {ext}: live here, gone upstream" for ext in sorted(set(rows) - set(upstream))]
    diffs += [f"{resource} {ext}: upstream, missing here" for ext in sorted(set(upstream) - set(rows))]
    for ext in sorted(set(rows) & set(upstream)):
        for name, expected in upstream[ext].items():
            if rows[ext][name] != expected:
                diffs.append(f"{resource} {ext}: {name} is {rows[ext][name]!r}, upstream {expected!r}")
    return diffs


def convergence_row(kind: str, checked: dict[str, list[str]], seconds: float, what: str) -> dict:
    """The demo report's line for one connector's convergence step."""
    diffs = [d for found in checked.values() for d in found]
    return {
        "connector": kind,
        "resource": "convergence",
        "records": len(checked),
        "seconds": round(seconds, 2),
        "state": "converged" if not diffs else "DIFFERS",
        "note": (f"{what}; tables equal upstream: " + ("yes" if not diffs else f"NO ({'; '.join(diffs[:3])})"))[:300],
    }
