"""Routes where Lightspeed calls us (webhooks, OAuth callbacks). Mounted at /connectors/lightspeed/."""

urlpatterns: list = []
