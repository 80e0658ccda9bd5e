"""Routes where Tiendanube calls us (webhooks, OAuth callbacks). Mounted at /connectors/tiendanube/."""

from django.urls import path

from . import views

app_name = "tiendanube"
urlpatterns = [
    path("connect/", views.connect_start, name="connect"),
    path("oauth/callback/", views.oauth_callback, name="oauth-callback"),
    path("webhooks/", views.webhook, name="webhook"),
]
