from django.urls import path

from . import views

# /healthz and /readyz are answered by ops.middleware.HealthProbeMiddleware (before host checks).
urlpatterns = [path("metrics", views.metrics, name="metrics")]
