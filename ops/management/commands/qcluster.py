"""django-q2's `qcluster`, plus what a starting cluster should do first: register every schedule
(idempotent; django-q2 has no "cluster starting" signal, and AppConfig.ready() runs in every process) and
record a heartbeat so /readyz sees the cluster before its first task. This app is listed before django_q
in INSTALLED_APPS, so `manage.py qcluster` is this command."""

import logging
import os

from django_q.management.commands.qcluster import Command as QclusterCommand

from ops import services

log = logging.getLogger(__name__)


class Command(QclusterCommand):
    def handle(self, *args, **options):
        # Children (workers, monitor) inherit it: their heartbeats name this cluster, not themselves.
        os.environ["SYNCHUB_QCLUSTER_PID"] = str(os.getpid())
        try:
            services.schedules_autoregister(reason="qcluster start")
        except Exception:
            # A bad schedule (a cron typo) is loud at `migrate`; here the cluster still starts so the schedules already registered keep running.
            log.exception("schedules not registered at qcluster start")
        try:
            services.heartbeat_record(force=True)
        except Exception:  # the cluster starts anyway; /readyz reports the missing heartbeat
            log.warning("qcluster start heartbeat not recorded", exc_info=True)
        return super().handle(*args, **options)
