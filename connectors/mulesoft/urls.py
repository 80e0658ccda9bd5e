"""Routes where MuleSoft calls us. Mounted at /connectors/mulesoft/."""

from django.urls import path

import sync.api.converters  # noqa: F401  registers <sync_id:...>

from . import views

urlpatterns: list = [
    path("push/<sync_id:connection_id>/", views.push_view, name="mulesoft-push"),
]
