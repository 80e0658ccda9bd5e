"""Concurrent triggers with one Idempotency-Key (real threads, real commits: PostgreSQL only)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection as db_connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sync.models import SyncQueue


@pytest.mark.postgres
def test_concurrent_same_key_makes_one_queue_and_no_5xx(transactional_db, staff, fake_conn, fake_kind):
    fake_kind.__init__(5)
    token = Token.objects.create(user=staff).key
    barrier = threading.Barrier(4)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def hit():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        barrier.wait()
        try:
            r = client.post(
                f"/api/connections/{fake_conn.pk}/resources/customers/sync",
                {"full_scan": True},
                format="json",
                HTTP_IDEMPOTENCY_KEY="same-key",
            )
            with lock:
                results.append((r.status_code, r.json()))
        finally:
            db_connection.close()

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 4
    assert {code for code, _ in results} <= {202, 409}, results
    assert SyncQueue.objects.filter(idempotency_key="same-key").count() == 1
    accepted = {body["queue_id"] for code, body in results if code == 202}
    assert len(accepted) == 1, results
    for code, body in results:
        if code == 409:
            assert body["error"]["code"] == "idempotency_key_in_progress"
