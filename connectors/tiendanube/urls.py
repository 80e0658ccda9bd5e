"""Routes where Tiendanube calls us (webhooks, OAuth callbacks). Mounted at /connectors/tiendanube/."""

urlpatterns: list = []
