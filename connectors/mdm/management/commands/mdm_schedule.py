"""Show, pause or resume the MDM export schedule."""

import json

from django.core.management import BaseCommand

from connectors.mdm import services


class Command(BaseCommand):
    help = "Show (default), pause or resume the MDM ineligible-items export schedule."

    def add_arguments(self, parser):
        parser.add_argument("action", nargs="?", choices=["show", "pause", "resume"], default="show")

    def handle(self, *args, action="show", **opts):
        fn = {"show": services.schedule_show, "pause": services.schedule_pause, "resume": services.schedule_resume}
        result = fn[action]() if action == "show" else fn[action](actor="manage.py")
        self.stdout.write(json.dumps(result, indent=2))
