"""Routes where Tiendanube calls us (webhooks, OAuth callbacks). Mounted at /connectors/tiendanube/."""

from django.urls import path

from . import views

app_name = "tiendanube"
urlpatterns = [
    path("connect/", views.connect_start, name="connect"),
    path("oauth/callback/", views.oauth_callback, name="oauth-callback"),
    path("webhooks/", views.webhook, name="webhook"),
    # LGPD webhooks at the URLs entered for each event in the partner portal (bodies without "event").
    path("webhooks/store-redact/", views.webhook_store_redact, name="webhook-store-redact"),
    path("webhooks/customers-redact/", views.webhook_customers_redact, name="webhook-customers-redact"),
    path(
        "webhooks/customers-data-request/",
        views.webhook_customers_data_request,
        name="webhook-customers-data-request",
    ),
]
