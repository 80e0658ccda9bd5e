"""Signals the connectors send and other apps (ops: metrics) receive, so neither imports the other."""

from django.dispatch import Signal

# Sent by connectors.base.Client each time an upstream answers 429. kwargs: connection (the Connection).
upstream_rate_limited = Signal()
