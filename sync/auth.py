"""Login throttling backend: django-axes' standalone backend, except that a call with no request (the test
client's ``login()``, a management command checking a password) is not a web login and is left to the next
backend instead of raising. Every web login (the admin's form) passes the request and is counted."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LoginThrottleBackend(AxesStandaloneBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
