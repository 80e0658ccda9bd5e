"""Register every schedule (system + what each connector's run policy declares) idempotently. Runs by itself
after `migrate` and when a qcluster starts (ops/apps.py); this command is for doing it explicitly and seeing
what changed.

Exit codes: 0 registered, 2 usage.
"""

from sync.runpolicy import schedules_register

from ._base import SyncCommand


class Command(SyncCommand):
    help = "Create or update all django-q2 schedules (one row per name; safe to run repeatedly)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--verbose-list", action="store_true", help="List every schedule, unchanged ones too.")

    def handle(self, *args, **options) -> None:
        from django_q.models import Schedule

        report = schedules_register()
        for name, change in sorted(report.changes.items()):
            if change == "unchanged" and not options["verbose_list"] and not name.startswith("synchub:"):
                continue
            schedule = Schedule.objects.filter(name=name).first()
            detail = (
                f"{schedule.func} ({schedule.get_schedule_type_display()}) next {schedule.next_run}"
                if schedule is not None
                else "removed"
            )
            self.stdout.write(f"{name}: {detail} [{change}]")
        counts = ", ".join(f"{n} {change}" for change, n in report.summary().items())
        self.stdout.write(f"schedules: {counts}")
