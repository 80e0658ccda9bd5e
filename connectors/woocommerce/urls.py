"""Routes where WooCommerce calls us. Mounted at /connectors/woocommerce/."""

from django.urls import path

from . import views

app_name = "woocommerce"

urlpatterns = [
    path("webhooks/<int:connection_id>/", views.webhook, name="webhook"),
]
