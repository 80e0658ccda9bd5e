"""Prometheus metrics, computed from the database on each scrape by one custom collector.

A fixed number of aggregate queries whatever the fleet size (a fleet can hold 10,000 connections): the
status rows, the connections, the runs finished in the last day grouped by kind/resource/state, the 429
counters, the broker's depth and the worker heartbeats. Per (connection, resource) series are gauges read
from SyncStatus; run-duration buckets are per (kind, resource), so their cardinality does not grow with the
fleet. Later signals (a failure streak per resource from the run policies) belong in ``_statuses`` as one
more gauge from the same query."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily

from core import clock

from . import selectors
from .models import RateLimitCount

log = logging.getLogger(__name__)

RES = ["connection", "kind", "organization", "resource"]
CONN = ["connection", "kind", "organization"]
RUN_WINDOW = dt.timedelta(hours=24)
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600)  # seconds; +Inf added


def _ts(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value else None


class SyncHubCollector:
    """Each section runs on its own: one that fails (broker down) leaves the others and says so in
    ``synchub_metrics_section_ok``."""

    def collect(self):
        ok = GaugeMetricFamily(
            "synchub_metrics_section_ok", "1 if this part of the scrape was read", labels=["section"]
        )
        now = clock.now()
        for name, section in (
            ("statuses", self._statuses),
            ("connections", self._connections),
            ("runs", self._runs),
            ("rate_limits", self._rate_limits),
            ("broker", self._broker),
            ("workers", self._workers),
            ("alerts", self._alerts),
        ):
            try:
                families = list(section(now))
            except Exception:
                log.warning("metrics section %s failed", name, exc_info=True)
                ok.add_metric([name], 0)
                continue
            ok.add_metric([name], 1)
            yield from families
        yield ok

    # one query: every (connection, resource) status row, streamed -----------------------------------------
    def _statuses(self, now):
        from sync.models import StatusState, SyncStatus

        last_success = GaugeMetricFamily(
            "synchub_sync_last_success_timestamp_seconds", "When the resource last synced successfully", labels=RES
        )
        lag = GaugeMetricFamily("synchub_sync_lag_seconds", "Seconds since the last successful sync", labels=RES)
        failed = GaugeMetricFamily("synchub_sync_last_run_failed", "1 if the last run failed", labels=RES)
        running = GaugeMetricFamily("synchub_sync_running", "1 while a run is in progress", labels=RES)
        duration = GaugeMetricFamily(
            "synchub_sync_last_run_duration_seconds", "Duration of the last finished run", labels=RES
        )
        synced = GaugeMetricFamily(
            "synchub_sync_last_run_records_synced", "Records the last successful run wrote", labels=RES
        )
        failed_lines = GaugeMetricFamily(
            "synchub_sync_last_run_failed_lines", "Lines that ended failed in the last run", labels=RES
        )
        rows = SyncStatus.objects.values_list(
            "connection_id",
            "connection__kind",
            "organization__slug",
            "resource",
            "state",
            "last_success_at",
            "started_at",
            "finished_at",
            "records_synced",
            "records_failed",
        ).order_by()
        for conn_id, kind, org, resource, state, success_at, started, finished, n_ok, n_failed in rows.iterator(
            chunk_size=2000
        ):
            labels = [str(conn_id), kind, org, resource]
            if success_at is not None:
                last_success.add_metric(labels, success_at.timestamp())
                lag.add_metric(labels, max((now - success_at).total_seconds(), 0.0))
            failed.add_metric(labels, 1 if state == StatusState.FAILED else 0)
            running.add_metric(labels, 1 if state == StatusState.SYNCING else 0)
            if started and finished and finished >= started:
                duration.add_metric(labels, (finished - started).total_seconds())
            synced.add_metric(labels, n_ok)
            failed_lines.add_metric(labels, n_failed)
        return [last_success, lag, failed, running, duration, synced, failed_lines]

    # one query: connection health --------------------------------------------------------------------
    def _connections(self, now):
        from django.apps import apps

        Connection = apps.get_model(settings.SYNC_CONNECTION_MODEL)
        streak = GaugeMetricFamily(
            "synchub_connection_consecutive_failures", "Failed calls in a row (0 after a success)", labels=CONN
        )
        reauth = GaugeMetricFamily(
            "synchub_connection_needs_reauth", "1 if the connection must be reconnected", labels=CONN
        )
        rows = Connection.objects.filter(is_active=True).values_list(
            "pk", "kind", "organization__slug", "consecutive_failures", "needs_reauth"
        )
        for pk, kind, org, failures, needs_reauth in rows.order_by().iterator(chunk_size=2000):
            streak.add_metric([str(pk), kind, org], failures)
            reauth.add_metric([str(pk), kind, org], 1 if needs_reauth else 0)
        return [streak, reauth]

    # one query: runs finished in the last day, by kind / resource / final state ------------------------
    def _runs(self, now):
        from sync.models import Lane, SyncQueue

        took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        buckets = {f"le_{b}": Count("pk", filter=Q(took__lte=dt.timedelta(seconds=b))) for b in DURATION_BUCKETS}
        rows = (
            SyncQueue.objects.filter(lane=Lane.RUN, finished_at__gte=now - RUN_WINDOW, started_at__isnull=False)
            .annotate(took=took)
            .values("connection__kind", "resource", "state")
            .annotate(n=Count("pk"), total=Sum("took"), **buckets)
            .order_by()
        )
        runs = GaugeMetricFamily(
            "synchub_sync_runs_finished_24h",
            "Runs finished in the last 24 h, by final state",
            labels=["kind", "resource", "state"],
        )
        per_resource: dict[tuple[str, str], dict] = {}
        for row in rows:
            kind, resource = row["connection__kind"], row["resource"]
            runs.add_metric([kind, resource, row["state"]], row["n"])
            acc = per_resource.setdefault((kind, resource), {"n": 0, "sum": 0.0, **{k: 0 for k in buckets}})
            acc["n"] += row["n"]
            acc["sum"] += row["total"].total_seconds() if row["total"] else 0.0
            for key in buckets:
                acc[key] += row[key]
        hist = GaugeHistogramMetricFamily(
            "synchub_sync_run_duration_seconds",
            "Durations of the runs finished in the last 24 h (a gauge histogram: old runs leave the window)",
            labels=["kind", "resource"],
        )
        for (kind, resource), acc in sorted(per_resource.items()):
            hist.add_metric(
                [kind, resource],
                [(str(float(b)), acc[f"le_{b}"]) for b in DURATION_BUCKETS] + [("+Inf", acc["n"])],
                gsum_value=acc["sum"],
            )
        return [runs, hist]

    # one query: 429 answers per connection (counted by connectors.base.Client through core.signals) -------
    def _rate_limits(self, now):
        family = CounterMetricFamily("synchub_upstream_rate_limited", "429 answers from the upstream", labels=CONN)
        rows = RateLimitCount.objects.values_list(
            "connection_id", "connection__kind", "connection__organization__slug", "count"
        )
        for conn_id, kind, org, count in rows.order_by().iterator(chunk_size=2000):
            family.add_metric([str(conn_id), kind, org], count)
        return [family]

    def _broker(self, now):
        depth = GaugeMetricFamily("synchub_broker_queue_depth", "Tasks waiting in the broker", labels=["broker"])
        depth.add_metric([selectors.broker_kind()], selectors.broker_queue_depth())
        return [depth]

    def _workers(self, now):
        beat = selectors.heartbeat_summary(within_seconds=max(settings.READYZ_WORKER_MAX_AGE_SECONDS, 60))
        families = []
        if beat["age_seconds"] is not None:
            age = GaugeMetricFamily(
                "synchub_worker_heartbeat_age_seconds",
                "Seconds since a qcluster last reported (a finished task or a start)",
            )
            age.add_metric([], beat["age_seconds"])
            families.append(age)
        alive = GaugeMetricFamily("synchub_workers_alive", "qclusters that reported within the readiness window")
        alive.add_metric([], beat["alive"])
        families.append(alive)
        return families

    def _alerts(self, now):
        from alerts.selectors import open_incident_counts

        incidents = GaugeMetricFamily(
            "synchub_alerts_open_incidents",
            "Open alert incidents (failure streaks, stale resources) per connector kind",
            labels=["kind", "incident"],
        )
        for row in open_incident_counts():
            incidents.add_metric([row["connection__kind"], row["kind"]], row["n"])
        return [incidents]


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(SyncHubCollector())
