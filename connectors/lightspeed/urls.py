"""Routes where Lightspeed (via the retailer's browser) calls us. Mounted at /connectors/lightspeed/."""

from django.urls import path

from . import views

app_name = "lightspeed"

urlpatterns = [
    path("oauth/start/", views.oauth_start, name="oauth-start"),
    path("oauth/callback/", views.oauth_callback, name="oauth-callback"),
]
