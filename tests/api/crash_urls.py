"""The real URLconf plus a route that crashes, to prove /api/ answers a 500 in the JSON error shape."""

from django.urls import path

from config.urls import *  # noqa: F403
from config.urls import urlpatterns as base_patterns


def crash(request):
    raise RuntimeError("boom with a secret-looking detail")


urlpatterns = [path("api/__crash", crash), path("plain/__crash", crash), *base_patterns]
