"""The one error shape at the Django level (no route, bad host, crashes) and the schema itself."""

from __future__ import annotations

import pytest
from django.test import Client

from .conftest import assert_error


def test_unknown_api_path_is_json_404(api):
    err = assert_error(api.get("/api/does/not/exist"), 404, "not_found")
    assert "/api/docs/" in err["message"]


def test_non_api_404_stays_html(client):
    r = client.get("/definitely-not-here")
    assert r.status_code == 404 and not r["Content-Type"].startswith("application/json")


def test_method_not_allowed_is_json(api):
    assert_error(api.put("/api/queues", {}, format="json"), 405, "method_not_allowed")


def test_bad_host_is_json_400(api):
    assert_error(api.get("/api/queues", HTTP_HOST="evil.example"), 400, "bad_request")


def test_crash_is_json_500_without_details(settings):
    settings.ROOT_URLCONF = "tests.api.crash_urls"
    client = Client(raise_request_exception=False)
    r = client.get("/api/__crash")
    err = assert_error(r, 500, "server_error")
    assert b"secret-looking" not in r.content and err["details"] == {}
    plain = client.get("/plain/__crash")
    assert plain.status_code == 500 and not plain["Content-Type"].startswith("application/json")


def test_schema_and_docs_are_served(api):
    r = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    schema = r.json()
    paths = schema["paths"]
    trigger = paths["/api/connections/{connection_id}/resources/{resource}/sync"]["post"]
    assert set(trigger["responses"]) >= {"202", "400", "401", "403", "404", "409", "413", "415", "422", "429"}
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in trigger["parameters"])
    assert "credentials" not in schema["components"]["schemas"]["Connection"]["properties"]
    assert api.get("/api/docs/").status_code == 200


def test_engine_schema_validates_without_warnings():
    """Our endpoints alone (other apps' endpoints are checked by `manage.py spectacular --validate`)."""
    from django.urls import include, path
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    GENERATOR_STATS.reset()
    schema = SchemaGenerator(patterns=[path("api/", include("sync.api.urls"))]).get_schema(request=None, public=True)
    validate_schema(schema)
    assert not GENERATOR_STATS, (dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache))
    assert len([op for item in schema["paths"].values() for op in item]) == 16


@pytest.mark.parametrize("url", ["/api/queues/1/retry", "/api/connections/1/test"])
def test_anonymous_post_is_401_not_csrf(anon, url):
    assert_error(anon.post(url), 401, "not_authenticated")
