"""Test settings: deterministic keys, loopback allowed for the sandboxes, django-q2 inline."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdC1rZXktZm9yLWZpZWxkLWVuY3J5cHRpb24tMzI=")
os.environ.setdefault("OUTBOUND_ALLOW_LOOPBACK", "true")
os.environ.setdefault("Q_SYNC", "true")
os.environ.setdefault("SYNC_RETRY_BASE_SECONDS", "0")
# Test databases start without schedules (tests register what they need); tests/ops turns this on.
os.environ.setdefault("SYNC_SCHEDULES_AUTOREGISTER", "false")

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
