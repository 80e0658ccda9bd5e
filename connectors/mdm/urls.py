"""Routes where MDM calls us (webhooks, OAuth callbacks). Mounted at /connectors/mdm/."""

urlpatterns: list = []
