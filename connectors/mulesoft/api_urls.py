"""MuleSoft-specific REST endpoints. Mounted at /api/mulesoft/."""

urlpatterns: list = []
