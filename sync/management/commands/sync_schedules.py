"""Register every schedule (system + connector-contributed) idempotently: run it on every deploy."""

from django.core.management import BaseCommand

from sync.schedules import schedules_register_all


class Command(BaseCommand):
    help = "Create or update all django-q2 schedules (one row per name; safe to run repeatedly)."

    def handle(self, *args, **options) -> None:
        for schedule in schedules_register_all():
            self.stdout.write(
                f"{schedule.name}: {schedule.func} ({schedule.get_schedule_type_display()}) next {schedule.next_run}"
            )
