"""Lightspeed-specific REST endpoints. Mounted at /api/lightspeed/."""

urlpatterns: list = []
