"""Routes where MuleSoft calls us (webhooks, OAuth callbacks). Mounted at /connectors/mulesoft/."""

urlpatterns: list = []
