"""Tiendanube-specific REST endpoints. Mounted at /api/tiendanube/."""

urlpatterns: list = []
