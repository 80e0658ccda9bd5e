"""Operations: health probes, Prometheus metrics, JSON logs, and the hooks that register schedules by
themselves (after `migrate`, and when a qcluster starts). A separate app because it is deployment plumbing
around the engine, not part of it: it reads sync and connector tables, wraps django-q2's `qcluster` command
(so it must be listed before django_q), and keeps prometheus-client out of the engine."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Connecting receivers only; nothing touches the database here (stack-notes §3, django-q #102).
        from django_q.signals import post_execute

        from core.signals import upstream_rate_limited

        from . import receivers

        # sender=self: migrate sends post_migrate once per app; this app's turn comes after its tables exist.
        post_migrate.connect(receivers.schedules_after_migrate, sender=self, dispatch_uid="ops.schedules")
        post_execute.connect(receivers.worker_heartbeat, dispatch_uid="ops.heartbeat")
        upstream_rate_limited.connect(receivers.rate_limited_count, dispatch_uid="ops.rate_limited")
