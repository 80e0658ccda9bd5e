"""Carry the stores' scheduling state over to the engine's run-policy tables (sync.RunSchedule: tier,
state, streak, next sync...; sync.RunSlot: slots held right now) and rename their django-q2 schedules to the
generic names (``tiendanube:<id>``, calling sync.tasks.sync_connection)."""

from django.db import migrations

FIELDS = (
    "tier",
    "state",
    "failures_in_row",
    "next_sync_at",
    "last_sync_at",
    "last_success_at",
    "last_failure_at",
    "last_activity_at",
    "last_error",
    "queued_at",
)


def forward(apps, schema_editor):
    StoreSchedule = apps.get_model("tiendanube", "StoreSchedule")
    SyncSlot = apps.get_model("tiendanube", "SyncSlot")
    RunSchedule = apps.get_model("sync", "RunSchedule")
    RunSlot = apps.get_model("sync", "RunSlot")
    Schedule = apps.get_model("django_q", "Schedule")
    for old in StoreSchedule.objects.all().iterator():
        name = f"tiendanube:{old.connection_id}"
        RunSchedule.objects.update_or_create(
            connection_id=old.connection_id,
            resource="",
            defaults={
                "organization_id": old.organization_id,
                "schedule_name": name,
                **{f: getattr(old, f) for f in FIELDS},
            },
        )
        Schedule.objects.filter(name=f"tiendanube:store:{old.connection_id}").update(
            name=name, func="sync.tasks.sync_connection"
        )
    for slot in SyncSlot.objects.all():
        RunSlot.objects.update_or_create(
            kind="tiendanube",
            number=slot.number,
            defaults={
                "connection_id": slot.connection_id,
                "acquired_at": slot.acquired_at,
                "lease_until": slot.lease_until,
            },
        )


def backward(apps, schema_editor):
    StoreSchedule = apps.get_model("tiendanube", "StoreSchedule")
    RunSchedule = apps.get_model("sync", "RunSchedule")
    Schedule = apps.get_model("django_q", "Schedule")
    for row in RunSchedule.objects.filter(connection__kind="tiendanube", resource=""):
        StoreSchedule.objects.update_or_create(
            connection_id=row.connection_id,
            defaults={
                "organization_id": row.organization_id,
                "schedule_name": f"tiendanube:store:{row.connection_id}",
                **{f: getattr(row, f) for f in FIELDS},
            },
        )
        Schedule.objects.filter(name=f"tiendanube:{row.connection_id}").update(
            name=f"tiendanube:store:{row.connection_id}", func="connectors.tiendanube.tasks.sync_store"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("tiendanube", "0001_initial"),
        ("sync", "0004_run_policy"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forward, backward)]
