"""Customer list API (GET /api/customers). See docs/api.md."""

urlpatterns: list = []
