"""Signals later features attach to.

``sync_run_finished`` fires after a queue reaches a final state (done, partial, failed, cancelled), on
commit, in the process that finished it. Receivers get ``queue`` (SyncQueue) and ``succeeded`` (bool).
Receivers must be quick and must not raise (errors are logged and swallowed): enqueue real work with
django-q2. Example: Tiendanube re-indexes search after a successful store sync.
"""

from django.dispatch import Signal

sync_run_finished = Signal()
