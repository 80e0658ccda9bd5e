"""Run the MDM -> S3 ineligible-items export now, in the foreground."""

from django.core.management import BaseCommand

from connectors.mdm.services import mdm_export_run


class Command(BaseCommand):
    help = "Export MDM's ineligible items to S3 now and print the outcome."

    def handle(self, *args, **opts):
        run = mdm_export_run(origin="manual", actor="manage.py")
        line = f"run #{run.pk}: {run.status}"
        if run.status == "success":
            line += f", {run.item_count} item(s) -> {run.s3_location} ETag {run.etag} in {run.duration_ms} ms"
        elif run.status == "failed":
            line += f" at {run.error_stage}: {run.error_type}: {run.error_message}"
        else:
            line += f": {run.skip_reason}"
        self.stdout.write(self.style.SUCCESS(line) if run.status == "success" else self.style.WARNING(line))
        if run.status == "failed":
            raise SystemExit(1)
