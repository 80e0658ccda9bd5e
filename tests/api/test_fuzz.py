"""Schema-driven fuzzing (schemathesis 4) of the engine endpoints against the live test server: no 5xx,
and every status, content type, header and body conforms to the OpenAPI schema. Bounded: a few examples
per operation, no shrinking, no example database, so it stays well under a minute in CI."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sync import services
from tests.fakes import FakeUpstream

OURS = r"^/api/(connections|queues|statuses)"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 6, schemathesis.GenerationMode.NEGATIVE: 3}


@pytest.fixture
def fuzz_world(transactional_db, staff, fake_conn, fake_kind, settings):
    """Committed data the server thread can see: a finished partial run, a status, a token."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"sync-trigger": "10000/min"}}
    fake_kind.records = [FakeUpstream.make(1), FakeUpstream.make(2, email="")]
    queue = services.sync_start(connection=fake_conn, resource="customers").queue
    token, _ = Token.objects.get_or_create(user=staff)
    return {
        "headers": {"Authorization": f"Token {token.key}"},
        "ids": {"connection_id": fake_conn.pk, "queue_id": queue.pk},
    }


@pytest.mark.slow
def test_fuzz_engine_endpoints(live_server, fuzz_world):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json").include(path_regex=OURS)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 16, [op.label for op in operations]
    for operation in operations:
        for mode, n in EXAMPLES.items():
            _fuzz(operation, mode, n, base_url=live_server.url, world=fuzz_world)


def _fuzz(operation, mode, n: int, *, base_url: str, world: dict) -> None:
    positive = mode is schemathesis.GenerationMode.POSITIVE

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        if positive and case.path_parameters:
            # Random ids almost always miss (404, covered by the isolation sweep); aim positive cases at
            # real objects so bodies, filters and actions are exercised for real.
            for name, value in world["ids"].items():
                if name in case.path_parameters:
                    case.path_parameters[name] = value
        case.call_and_validate(base_url=base_url, headers=world["headers"], checks=CHECKS)

    run()
