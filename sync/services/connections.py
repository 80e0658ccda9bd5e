"""A connection's health as runs see it (needs re-authorisation, consecutive failures), and its identity:
which upstream it points at, so that a cursor is never used against another one (invariant 18)."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

from django.db.models import F

from core import clock
from core.redaction import redact

from ..activity import activity_record
from ..models import ActivityLevel, SyncStatus
from ..registry import connection_model

IDENTITY_LABELS = {"kind": "kind", "base_url": "base URL", "external_account_id": "store / account id"}


def upstream_identity(connection) -> dict[str, str]:
    """What names the upstream a connection reads: kind, base URL (scheme and host lower-cased, no trailing
    slash), the external account id, and the connector's identity credentials / config keys. Credential
    values enter as hashes only (this dict may be compared, never shown)."""
    from ..registry import UnknownKind, get_connector

    url = (connection.base_url or "").strip()
    parts = urlsplit(url)
    if parts.scheme:
        url = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"
    identity = {
        "kind": connection.kind or "",
        "base_url": url,
        "external_account_id": (connection.external_account_id or "").strip(),
    }
    try:
        connector = get_connector(connection.kind)
    except UnknownKind:
        return identity
    if connector.identity_credentials:
        creds = connection.credentials if connection.has_credentials else {}
        for key in connector.identity_credentials:
            value = str(creds.get(key) or "")
            identity[f"credentials.{key}"] = hashlib.sha256(value.encode()).hexdigest() if value else ""
    for key in connector.identity_config:
        identity[f"config.{key}"] = str((connection.config or {}).get(key) or "").strip().lower()
    return identity


def upstream_fingerprint(connection) -> str:
    blob = json.dumps(upstream_identity(connection), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:64]


def identity_changes(before: dict[str, str], connection) -> list[str]:
    """What changed between an identity taken earlier and the connection now (labels for people)."""
    after = upstream_identity(connection)
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k, "") != after.get(k, "")]
    return [IDENTITY_LABELS.get(k, k.replace("credentials.", "credential ").replace("config.", "")) for k in changed]


def connection_reset_cursors(*, connection, actor=None, reason: str = "") -> int:
    """Forget every cursor of the connection: the next run of each resource reads from the beginning, and
    the cursors are re-bound to the upstream the connection points at now. Returns how many were reset."""
    fingerprint = upstream_fingerprint(connection)
    n = (
        SyncStatus.objects.filter(connection_id=connection.pk)
        .exclude(cursor="")
        .update(cursor="", upstream=fingerprint)
    )
    SyncStatus.objects.filter(connection_id=connection.pk).update(upstream=fingerprint)
    activity_record(
        event="connection.cursors_reset",
        connection=connection,
        actor=actor if getattr(actor, "pk", None) else None,
        level=ActivityLevel.WARNING,
        message=f"{connection.name}: {n} cursor(s) reset" + (f" ({reason})" if reason else ""),
        data={"cursors": n, "reason": reason},
    )
    return n


def cursor_for_run(connection, resource: str) -> tuple[str, str]:
    """(cursor, fingerprint) a new run starts from. A cursor bound to another upstream than the one the
    connection points at now is dropped first (whatever changed the connection: admin, shell, a script)."""
    fingerprint = upstream_fingerprint(connection)
    status = SyncStatus.objects.filter(connection_id=connection.pk, resource=resource).only("id", "cursor", "upstream")
    status = status.first()
    if status is None:
        return "", fingerprint
    if status.upstream and status.upstream != fingerprint:
        SyncStatus.objects.filter(pk=status.pk).update(cursor="", upstream=fingerprint)
        if status.cursor:
            activity_record(
                event="connection.cursors_reset",
                connection=connection,
                level=ActivityLevel.WARNING,
                message=f"{connection.name}: the {resource} cursor belonged to another upstream; reading from the start",
                data={"cursors": 1, "resource": resource, "reason": "upstream changed"},
            )
        return "", fingerprint
    if not status.upstream:
        SyncStatus.objects.filter(pk=status.pk).update(upstream=fingerprint)  # adopt (rows older than the field)
    return status.cursor, fingerprint


def connection_mark_needs_reauth(*, connection, reason: str, actor=None) -> None:
    Connection = connection_model()
    Connection.objects.filter(pk=connection.pk).update(
        needs_reauth=True, last_error=redact(reason)[:2000], health="down"
    )
    connection.needs_reauth = True
    activity_record(
        event="connection.needs_reauth",
        connection=connection,
        actor=actor,
        level=ActivityLevel.ERROR,
        message=f"{connection.name}: re-authorisation needed: {reason}",
    )


def connection_record_result(*, connection, ok: bool, error: str = "") -> None:
    Connection = connection_model()
    now = clock.now()
    if ok:
        Connection.objects.filter(pk=connection.pk).update(
            consecutive_failures=0, health="ok", last_error="", last_checked_at=now
        )
    else:
        Connection.objects.filter(pk=connection.pk).update(
            consecutive_failures=F("consecutive_failures") + 1,
            last_error=redact(error)[:2000],
            last_checked_at=now,
        )
        # "down" (needs re-authorisation) is worse than "degraded": a failed run must not soften it.
        Connection.objects.filter(pk=connection.pk, needs_reauth=False).update(health="degraded")
