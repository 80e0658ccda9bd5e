from django.apps import AppConfig


class MDMConfig(AppConfig):
    name = "connectors.mdm"
    label = "mdm"
    verbose_name = "MDM"

    def ready(self) -> None:
        from . import conf

        if conf.MDM_CACHE_PRELOAD:
            # Only a signal hookup here (no DB, no S3): each qcluster worker loads the items when it spawns.
            from django_q.signals import post_spawn

            from .tasks import preload_items_cache

            post_spawn.connect(preload_items_cache, dispatch_uid="mdm-preload-items")
