"""Engine REST endpoints (triggers, queues, statuses, connections). See docs/api.md."""

urlpatterns: list = []
