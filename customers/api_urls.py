"""Customer list API (GET /api/customers). See docs/connectors/mulesoft.md."""

from django.urls import path

from .views import CustomerListView

urlpatterns = [
    path("customers", CustomerListView.as_view(), name="customer-list"),
]
