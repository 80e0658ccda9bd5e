import pytest


@pytest.fixture
def locmem_cache(settings):
    """The test database has no cache table; the probes need a working cache unless a test breaks it."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ops"}}
    return settings
