"""Register every schedule (system + connector-contributed) idempotently. Runs by itself after `migrate` and
when a qcluster starts (ops/apps.py); this command is for doing it explicitly and seeing what changed."""

from collections import Counter

from django.core.management import BaseCommand

from sync.schedules import schedules_register_all


class Command(BaseCommand):
    help = "Create or update all django-q2 schedules (one row per name; safe to run repeatedly)."

    def handle(self, *args, **options) -> None:
        counts: Counter = Counter()
        for schedule in schedules_register_all():
            change = getattr(schedule, "change", "updated")
            counts[change] += 1
            counts["removed"] += getattr(schedule, "removed", 0)
            self.stdout.write(
                f"{schedule.name}: {schedule.func} ({schedule.get_schedule_type_display()}) next {schedule.next_run}"
                f" [{change}]"
            )
        self.stdout.write(
            "schedules: {created} created, {updated} updated, {unchanged} unchanged, {removed} removed".format(
                **{k: counts[k] for k in ("created", "updated", "unchanged", "removed")}
            )
        )
