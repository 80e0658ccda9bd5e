"""MDM-specific REST endpoints. Mounted at /api/mdm/."""

urlpatterns: list = []
