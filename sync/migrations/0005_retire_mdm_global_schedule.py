"""MDM's export schedule is now one generic CRON schedule per MDM connection (``mdm:<id>:ineligible_items``,
calling sync.tasks.start_scheduled_sync, registered by ``manage.py sync_schedules``). Remove the former
global row so the export does not fire twice."""

from django.db import migrations


def forward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="synchub:mdm-ineligible-items-export").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0004_run_policy"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
