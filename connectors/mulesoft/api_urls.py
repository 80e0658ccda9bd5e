"""MuleSoft-specific REST endpoints. Mounted at /api/mulesoft/."""

from django.urls import path

from . import api

urlpatterns = [
    path("loyalty/status", api.LoyaltyStatusView.as_view(), name="mulesoft-loyalty-status"),
    path("loyalty/refresh", api.LoyaltyRefreshView.as_view(), name="mulesoft-loyalty-refresh"),
]
