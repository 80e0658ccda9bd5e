"""Bulk onboarding: connect many stores from a list of (store_id, access_token[, scope]) in one go.

Per chunk of 1,000 stores, one transaction and a constant number of statements: one SELECT of the stores
already known, one bulk INSERT (new) / bulk UPDATE (reconnected) of Connections with their tokens encrypted
as everywhere (core.crypto through Connection.credentials), one UPSERT of their schedule units and one bulk
INSERT of "connected" activity rows. First syncs are NOT started at once: each store's first run is due at
``start + i / first_syncs_per_minute`` and the scheduler tick (sync.scheduler) enqueues it then, so a big
import reaches the broker and Tiendanube at a bounded rate. Tokens are never logged, printed or reported."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction

from connectors.models import Connection
from core import clock
from sync import runpolicy
from sync.models import ActivityLevel, RunSchedule, ScheduleState, SyncActivity

from . import conf
from .selectors import KIND

CHUNK = 1000
DEFAULT_FIRST_SYNCS_PER_MINUTE = 60
STORE_ID = re.compile(r"^[0-9]{1,20}$")


@dataclass
class ImportReport:
    created: int = 0
    reconnected: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (store id or row number, reason) - no tokens
    first_sync_from: dt.datetime | None = None
    first_sync_until: dt.datetime | None = None

    @property
    def connected(self) -> int:
        return self.created + self.reconnected


def rows_parse(text: str, *, fmt: str = "") -> list[dict]:
    """A CSV with a header (store_id, access_token[, scope]) or a JSON list of such objects."""
    stripped = text.lstrip()
    if fmt == "json" or (not fmt and stripped.startswith("[")):
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError("the JSON must be a list of {store_id, access_token, scope} objects")
        return [r if isinstance(r, dict) else {} for r in data]
    return list(csv.DictReader(io.StringIO(text)))


def stores_import(
    *,
    organization,
    rows: Iterable[dict],
    first_syncs_per_minute: int = DEFAULT_FIRST_SYNCS_PER_MINUTE,
    actor=None,
    start: dt.datetime | None = None,
) -> ImportReport:
    """Connect every listed store to ``organization``. A store connected to another organization, a row
    without a numeric store id or a token, and a repeated store id are refused (reported, not raised)."""
    report = ImportReport()
    policy = runpolicy.policy_of(KIND)
    runpolicy.schedules_apply(runpolicy.housekeeping_specs([KIND]))  # the kind's tick exists from now on
    rate = max(1, int(first_syncs_per_minute))
    start = start or clock.now()
    seen: set[str] = set()
    clean: list[dict] = []
    for n, row in enumerate(rows, start=1):
        store_id = str(row.get("store_id") or "").strip()
        token = str(row.get("access_token") or "").strip()
        if not STORE_ID.match(store_id):
            report.refused.append((f"row {n}", "no numeric store_id"))
        elif not token:
            report.refused.append((store_id, "no access_token"))
        elif store_id in seen:
            report.refused.append((store_id, "listed twice"))
        else:
            seen.add(store_id)
            clean.append({"store_id": store_id, "token": token, "scope": str(row.get("scope") or "").strip()})
    label = getattr(actor, "get_username", lambda: "import")() if actor is not None else "import"
    position = 0
    for begin in range(0, len(clean), CHUNK):
        position = _import_chunk(
            organization, clean[begin : begin + CHUNK], report, policy, rate, start, position, actor, label
        )
    return report


def _import_chunk(organization, chunk, report, policy, rate, start, position, actor, label) -> int:
    cfg = conf.get()
    tier = policy.schedule.default
    with transaction.atomic():
        known = {
            c.external_account_id: c
            for c in Connection.objects.select_for_update().filter(
                kind=KIND, external_account_id__in=[r["store_id"] for r in chunk]
            )
        }
        creates, updates, accepted = [], [], []
        for r in chunk:
            conn = known.get(r["store_id"])
            if conn is not None and conn.organization_id != organization.pk:
                report.refused.append((r["store_id"], "connected to another organization"))
                continue
            if conn is None:
                conn = Connection(
                    organization=organization,
                    kind=KIND,
                    external_account_id=r["store_id"],
                    name=f"Tiendanube store {r['store_id']}",
                )
                creates.append(conn)
            else:
                updates.append(conn)
            conn.base_url = cfg.store_base_url(r["store_id"])
            conn.credentials = {"access_token": r["token"]}  # encrypted by the model (core.crypto)
            conn.config = {**(conn.config or {}), "scope": r["scope"]}
            conn.needs_reauth, conn.is_active, conn.consecutive_failures = False, True, 0
            conn.last_error, conn.health = "", "unknown"
            accepted.append(conn)
        Connection.objects.bulk_create(creates, batch_size=CHUNK)
        if updates:
            Connection.objects.bulk_update(
                updates,
                [
                    "base_url",
                    "credentials_encrypted",
                    "config",
                    "needs_reauth",
                    "is_active",
                    "consecutive_failures",
                    "last_error",
                    "health",
                ],
                batch_size=CHUNK,
            )
        if creates and creates[0].pk is None:  # a backend that does not return ids from a bulk INSERT
            ids = dict(
                Connection.objects.filter(
                    kind=KIND, external_account_id__in=[c.external_account_id for c in creates]
                ).values_list("external_account_id", "pk")
            )
            for c in creates:
                c.pk = c.id = ids.get(c.external_account_id)
        units, activities = [], []
        for conn in accepted:
            due = start + dt.timedelta(seconds=60 * position / rate)
            position += 1
            report.first_sync_from = report.first_sync_from or due
            report.first_sync_until = due
            units.append(
                RunSchedule(
                    organization=organization,
                    connection=conn,
                    resource=runpolicy.WHOLE,
                    tier=tier,
                    state=ScheduleState.ACTIVE,
                    failures_in_row=0,
                    last_error="",
                    next_sync_at=due,
                    queued_at=None,
                )
            )
            activities.append(
                SyncActivity(
                    organization=organization,
                    connection=conn,
                    actor=actor if getattr(actor, "pk", None) else None,
                    actor_label=label[:150],
                    event="tiendanube.connected",
                    level=ActivityLevel.INFO,
                    message=f"store {conn.external_account_id} connected (bulk import); first sync at {due:%Y-%m-%d %H:%M} UTC",
                    data={"origin": "import", "first_sync_at": due.isoformat()},
                )
            )
        RunSchedule.objects.bulk_create(
            units,
            update_conflicts=True,
            unique_fields=["connection", "resource"],
            update_fields=["organization", "state", "failures_in_row", "last_error", "next_sync_at", "queued_at"],
            batch_size=CHUNK,
        )
        SyncActivity.objects.bulk_create(activities, batch_size=CHUNK)
        report.created += len(creates)
        report.reconnected += len(updates)
    return position
