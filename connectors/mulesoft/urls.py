"""Routes where MuleSoft calls us. Mounted at /connectors/mulesoft/."""

from django.urls import path

from . import views

urlpatterns: list = [
    path("push/<int:connection_id>/", views.push_view, name="mulesoft-push"),
]
