"""Template helpers of the operations console: human times with the exact time on hover, progress bars."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

register = template.Library()


@register.filter
def sh_time(value: dt.datetime | None, empty: str = "-") -> str:
    """``<time datetime=ISO title=exact>3 minutes ago</time>`` (or "in 5 minutes" for a future time)."""
    if not value:
        return empty
    now = timezone.now()
    local = timezone.localtime(value)
    exact = local.strftime("%Y-%m-%d %H:%M:%S %Z")
    if abs((now - value).total_seconds()) < 45:
        human = "just now"
    elif value <= now:
        human = f"{timesince(value, now, depth=1)} ago"
    else:
        human = f"in {timeuntil(value, now, depth=1)}"
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, human.replace("\xa0", " "))


@register.simple_tag
def sh_progress(queue, name: str = "", live: bool = True) -> str:
    from sync.admin_views import progress_bar_html

    return progress_bar_html(queue, live=live, name=name) if queue is not None else ""
