"""`{% worker_banner %}`: the worker-liveness line on every page with a button that needs a worker."""

from django import template

from sync.liveness import START_COMMAND, worker_status

register = template.Library()


@register.inclusion_tag("admin/sync/_worker_banner.html")
def worker_banner():
    return {"worker": worker_status(), "start_command": START_COMMAND}
