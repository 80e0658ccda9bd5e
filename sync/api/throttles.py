"""Throttles. ``SyncTriggerThrottle`` limits every endpoint that starts work upstream (scope
"sync-trigger", rate from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], env THROTTLE_SYNC_TRIGGER).
Connector engineers: ``throttle_classes = [SyncTriggerThrottle]`` on your trigger views."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


class SyncTriggerThrottle(ScopedRateThrottle):
    """ScopedRateThrottle that always applies the "sync-trigger" scope, read from the settings at request
    time (DRF's class attribute is frozen at import, which would ignore overridden settings)."""

    scope_attr = "throttle_scope"

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None) or "sync-trigger"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super(ScopedRateThrottle, self).allow_request(request, view)

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class ApiUserThrottle(SyncTriggerThrottle):
    """The default throttle of every API view (``DEFAULT_THROTTLE_CLASSES``): authenticated clients, token or
    session, per user, scope "api-user" (env THROTTLE_API_USER). Anonymous calls never reach it: they are
    refused with 401 first. A scope without a rate (tests that replace the rates) throttles nothing."""

    def allow_request(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return True
        self.scope = "api-user"
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super(ScopedRateThrottle, self).allow_request(request, view)
