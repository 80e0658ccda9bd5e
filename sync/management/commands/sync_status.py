"""Show sync status per (connection, resource) and the active queues (--json for scripts).

Exit codes: 0 shown (also when nothing has run yet), 2 usage or unknown --connection.
"""

from __future__ import annotations

from django.core.management import CommandError

from sync import selectors
from sync.registry import connection_model

from ._base import EXIT_USAGE, SyncCommand, queue_json, to_json


class Command(SyncCommand):
    help = "Show the sync status of every connection and resource, and the active queues."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--connection", type=int, default=None, help="only this connection id")
        parser.add_argument(
            "--json", action="store_true", help='print {"statuses": [...], "active_queues": [...]} as JSON'
        )

    def handle(self, *args, **options) -> None:
        connection_id = options["connection"]
        if connection_id is not None and not connection_model().objects.filter(pk=connection_id).exists():
            raise CommandError(f"connection #{connection_id} does not exist", returncode=EXIT_USAGE)
        statuses = list(selectors.status_all(connection_id=connection_id))
        active = list(selectors.queues_active(connection_id=connection_id))
        if options["json"]:
            from sync.api.serializers import SyncStatusSerializer

            rows = []
            for st in statuses:
                row = dict(SyncStatusSerializer(st).data)
                row["connection_name"] = st.connection.name
                rows.append(row)
            self.say(to_json({"statuses": rows, "active_queues": [queue_json(q) for q in active]}))
            return
        if not statuses:
            self.stdout.write("no sync has run yet")
        for st in statuses:
            when = st.finished_at.isoformat(timespec="seconds") if st.finished_at else "-"
            self.stdout.write(
                f"#{st.connection_id} {st.connection.name} / {st.resource}: {st.state} "
                f"(cursor {st.cursor or '-'}, synced {st.records_synced}, failed {st.records_failed}, finished {when})"
                + (f"\n    last error: {st.last_error}" if st.last_error else "")
            )
        if active:
            self.stdout.write("active queues:")
            for q in active:
                self.stdout.write("  " + selectors.queue_progress_line(q))
