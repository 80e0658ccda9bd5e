"""``store_synced`` fires after a store's products, orders and customers all synced successfully
(sender=Connection, ``connection``). The original system re-indexed its search engine here:

    from django.dispatch import receiver
    from connectors.tiendanube.signals import store_synced

    @receiver(store_synced)
    def reindex(sender, connection, **kwargs):
        async_task("search.tasks.reindex_store", connection.pk)   # enqueue; keep receivers quick

Per-resource runs also fire ``sync.signals.sync_run_finished`` (queue, succeeded).
"""

from django.dispatch import Signal

store_synced = Signal()
