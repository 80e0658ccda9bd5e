"""Answers the load balancer's probes before anything else runs: no host validation (probes come by IP),
no HTTPS redirect (they speak plain http inside the network), no session, no database for /healthz."""

from __future__ import annotations

from django.http import JsonResponse

from . import health

PATHS = {"/healthz", "/healthz/", "/readyz", "/readyz/"}


class HealthProbeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path not in PATHS:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return _no_store(JsonResponse({"error": "method not allowed"}, status=405, headers={"Allow": "GET, HEAD"}))
        if request.path.startswith("/healthz"):
            return _no_store(JsonResponse({"status": "ok"}))
        ok, body = health.readiness()
        return _no_store(JsonResponse(body, status=200 if ok else 503))


def _no_store(response):
    response["Cache-Control"] = "no-store"
    return response
