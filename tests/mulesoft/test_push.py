"""MuleSoft's signed push of tier changes (connectors/mulesoft/push.py, docs/connectors/mulesoft.md): verified,
within the timestamp window, deduplicated by delivery id and body hash, applied through the webhook lane,
bounded, every answer in the one error shape."""

import json

import pytest
from django.test import Client

from connectors.mulesoft import conf
from connectors.mulesoft.push import sign
from customers.models import LoyaltyTier
from sync.models import Lane, SyncQueue

pytestmark = pytest.mark.django_db

SECRET = "push-secret-0123456789"


@pytest.fixture
def conn(org, make_connection):
    return make_connection(org, kind="mulesoft", name="MuleSoft", credentials={"push_secret": SECRET})


def post(conn, payload, *, ts, secret=SECRET, delivery="", raw=None, signature=None, capture=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"HTTP_X_SYNCHUB_TIMESTAMP": str(ts), "HTTP_X_SYNCHUB_SIGNATURE": signature or sign(secret, ts, body)}
    if delivery:
        headers["HTTP_X_SYNCHUB_DELIVERY_ID"] = delivery
    url = f"/connectors/mulesoft/push/{conn.pk}/"
    if capture is None:
        return Client().post(url, body, content_type="application/json", **headers)
    with capture(execute=True):
        return Client().post(url, body, content_type="application/json", **headers)


def now_ts(fake_clock):
    return int(fake_clock.now().timestamp())


GOLD = {"id": "gold", "code": "GOLD", "name": "Gold", "rank": 2, "minPoints": 1000, "benefits": ["lounge"]}


def test_a_signed_push_is_applied_through_the_webhook_lane(conn, fake_clock, django_capture_on_commit_callbacks):
    response = post(
        conn, {"tiers": [GOLD]}, ts=now_ts(fake_clock), delivery="d-1", capture=django_capture_on_commit_callbacks
    )
    assert response.status_code == 202 and response.json()["tiers"] == 1
    queue = SyncQueue.objects.get(pk=response.json()["queue"])
    assert queue.lane == Lane.WEBHOOK and queue.resource == "loyalty_tiers" and queue.state == "done"
    tier = LoyaltyTier.objects.get(connection=conn, external_id="gold")
    assert tier.name == "Gold" and tier.min_points == 1000 and tier.benefits == ["lounge"]
    gone = post(conn, {"deleted": ["gold"]}, ts=now_ts(fake_clock), capture=django_capture_on_commit_callbacks)
    assert gone.status_code == 202
    tier.refresh_from_db()
    assert tier.deleted_at is not None


def test_a_repeat_by_delivery_id_or_body_changes_nothing(conn, fake_clock, django_capture_on_commit_callbacks):
    ts = now_ts(fake_clock)
    assert (
        post(conn, {"tiers": [GOLD]}, ts=ts, delivery="d-1", capture=django_capture_on_commit_callbacks).status_code
        == 202
    )
    LoyaltyTier.objects.filter(external_id="gold").update(name="Changed since")
    same_body = post(conn, {"tiers": [GOLD]}, ts=ts, delivery="d-2", capture=django_capture_on_commit_callbacks)
    same_id = post(conn, {"tiers": [{**GOLD, "name": "Other"}]}, ts=ts, delivery="d-1")
    assert same_body.status_code == same_id.status_code == 200
    assert same_body.json()["duplicate"] and same_id.json()["duplicate"] == "d-1"
    assert LoyaltyTier.objects.get(external_id="gold").name == "Changed since"
    assert SyncQueue.objects.filter(lane=Lane.WEBHOOK).count() == 1


def test_an_old_body_replayed_later_is_refused_by_the_window(conn, fake_clock, django_capture_on_commit_callbacks):
    """A captured delivery replayed after the window: its signed timestamp is old (and cannot be refreshed
    without the secret), so it cannot overwrite newer data even after its dedupe row was purged."""
    ts = now_ts(fake_clock)
    body = json.dumps({"tiers": [GOLD]}).encode()
    assert post(conn, None, raw=body, ts=ts, capture=django_capture_on_commit_callbacks).status_code == 202
    LoyaltyTier.objects.filter(external_id="gold").update(name="Newer")
    fake_clock.advance(3 * conf.PUSH_TOLERANCE_SECONDS)
    replay = post(conn, None, raw=body, ts=ts, signature=sign(SECRET, ts, body))
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "stale_timestamp"
    refreshed = post(conn, None, raw=body, ts=now_ts(fake_clock), signature=sign(SECRET, ts, body))
    assert refreshed.status_code == 401 and refreshed.json()["error"]["code"] == "invalid_signature"
    assert LoyaltyTier.objects.get(external_id="gold").name == "Newer"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"signature": "sha256=" + "0" * 64}, "invalid_signature"),
        ({"secret": "wrong-secret-000000"}, "invalid_signature"),
        ({"ts": "yesterday"}, "invalid_signature"),
    ],
)
def test_bad_signatures_are_401_in_the_error_shape(conn, fake_clock, headers, code):
    kwargs = {"ts": now_ts(fake_clock), **headers}
    response = post(conn, {"tiers": [GOLD]}, **kwargs)
    assert response.status_code == 401
    assert set(response.json()) == {"error"} and response.json()["error"]["code"] == code
    assert not LoyaltyTier.objects.exists() and not SyncQueue.objects.exists()


def test_future_timestamps_are_refused_too(conn, fake_clock):
    response = post(conn, {"tiers": [GOLD]}, ts=now_ts(fake_clock) + conf.PUSH_TOLERANCE_SECONDS + 5)
    assert response.status_code == 401 and response.json()["error"]["code"] == "stale_timestamp"


def test_unknown_or_push_disabled_connection_is_404(org, make_connection, fake_clock):
    plain = make_connection(org, kind="mulesoft", name="no push")
    assert post(plain, {"tiers": [GOLD]}, ts=now_ts(fake_clock)).status_code == 404
    woo = make_connection(org, credentials={"push_secret": SECRET})
    assert post(woo, {"tiers": [GOLD]}, ts=now_ts(fake_clock)).json()["error"]["code"] == "not_found"


def test_bodies_are_bounded(conn, fake_clock, monkeypatch):
    ts = now_ts(fake_clock)
    monkeypatch.setattr(conf, "PUSH_MAX_BYTES", 200)
    big = post(conn, {"tiers": [{**GOLD, "benefits": ["x" * 300]}]}, ts=ts)
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    monkeypatch.setattr(conf, "PUSH_MAX_BYTES", 262_144)
    deep = {"tiers": [dict(GOLD)]}
    node = deep["tiers"][0]
    for _ in range(50):
        node["extra"] = {}
        node = node["extra"]
    assert post(conn, deep, ts=ts).status_code == 400
    monkeypatch.setattr(conf, "PUSH_MAX_TIERS", 2)
    many = post(conn, {"tiers": [{**GOLD, "id": str(i)} for i in range(3)]}, ts=ts)
    assert many.status_code == 413


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1, 2]", b"{}", b'{"tiers": "gold"}', b'{"tiers": [{"name": "no id"}]}', b'{"deleted": [""]}'],
)
def test_malformed_bodies_are_400(conn, fake_clock, raw):
    response = post(conn, None, raw=raw, ts=now_ts(fake_clock))
    # Not JSON at all is core.bodies' parse_error (the API's code for it too); the rest fail our contract.
    code = "parse_error" if raw == b"not json" else "invalid"
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert not SyncQueue.objects.exists()


def test_get_is_not_allowed(conn):
    assert Client().get(f"/connectors/mulesoft/push/{conn.pk}/").status_code == 405


def test_dedupe_rows_are_purged_after_twice_the_window(conn, fake_clock, django_capture_on_commit_callbacks):
    from connectors.mulesoft.models import PushDelivery
    from connectors.mulesoft.tasks import push_deliveries_purge

    post(conn, {"tiers": [GOLD]}, ts=now_ts(fake_clock), capture=django_capture_on_commit_callbacks)
    fake_clock.advance(2 * conf.PUSH_TOLERANCE_SECONDS + 1)
    assert push_deliveries_purge() == 1 and not PushDelivery.objects.exists()


def test_a_deeply_nested_body_is_a_400_not_a_500(conn, fake_clock):
    raw = b'{"tiers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = post(conn, None, raw=raw, ts=now_ts(fake_clock))
    assert response.status_code in (400, 413) and response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] in ("too_deep", "payload_too_large")
