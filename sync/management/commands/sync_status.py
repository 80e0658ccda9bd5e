"""Show sync status per (connection, resource) and the active queues."""

from __future__ import annotations

from django.core.management import BaseCommand

from sync import selectors


class Command(BaseCommand):
    help = "Show the sync status of every connection and resource, and the active queues."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--connection", type=int, default=None, help="only this connection id")

    def handle(self, *args, **options) -> None:
        connection_id = options["connection"]
        statuses = list(selectors.status_all(connection_id=connection_id))
        if not statuses:
            self.stdout.write("no sync has run yet")
        for st in statuses:
            when = st.finished_at.isoformat(timespec="seconds") if st.finished_at else "-"
            self.stdout.write(
                f"#{st.connection_id} {st.connection.name} / {st.resource}: {st.state} "
                f"(cursor {st.cursor or '-'}, synced {st.records_synced}, failed {st.records_failed}, finished {when})"
                + (f"\n    last error: {st.last_error}" if st.last_error else "")
            )
        active = list(selectors.queues_active(connection_id=connection_id))
        if active:
            self.stdout.write("active queues:")
            for q in active:
                self.stdout.write("  " + selectors.queue_progress_line(q))
