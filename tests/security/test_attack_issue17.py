"""Issue 17 re-attacked after the merge (attacker + staff of another organization): each "Why" finding
replayed against main, plus attacks the issue did not list. A failure here is a hole."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from connectors.models import Connection
from connectors.mulesoft.push import sign as mule_sign
from connectors.woocommerce.services import signature_for
from core.http import BlockedDestination, validate_outbound_url

pytestmark = pytest.mark.django_db

REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://127.0.0.1:5432/",
    "http://[::1]:5432/",
    "http://0.0.0.0:5432/",
    "http://10.0.0.1/",
    "http://100.64.0.1/",
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[::ffff:0:a9fe:a9fe]/",  # IPv4-translated (RFC 2765) 169.254.169.254
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2001:0:a9fe:a9fe::1]/",
    "http://internal.example/",  # resolves to 10.1.2.3 (stub)
    "http://rebind.example/",  # resolves to one public and one metadata address (stub)
]


@pytest.fixture
def strict(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    settings.OUTBOUND_ALLOW_PRIVATE = False
    return settings


@pytest.fixture
def stubbed(dns):
    dns({"internal.example": ["10.1.2.3"], "rebind.example": ["93.184.216.34", "169.254.169.254"]})


# --- 1. brute force on /admin/login/ ---------------------------------------------------------------------
def test_25_wrong_passwords_then_the_right_one_is_refused(staff):
    cache.clear()
    staff.set_password("right-password-123")
    staff.save()
    c = Client()
    answers = [
        c.post("/admin/login/?next=/admin/", {"username": staff.username, "password": f"wrong{i}"}).status_code
        for i in range(25)
    ]
    assert answers[-1] == 429 and answers.count(429) >= 20
    right = c.post("/admin/login/?next=/admin/", {"username": staff.username, "password": "right-password-123"})
    assert right.status_code == 429
    # another address, same user: still locked (per-user lockout)
    other = Client(REMOTE_ADDR="203.0.113.9")
    assert (
        other.post("/admin/login/", {"username": staff.username, "password": "right-password-123"}).status_code == 429
    )


# --- 2. private/metadata URLs at save: model, admin form, API serializer ----------------------------------
@pytest.mark.parametrize("url", REFUSED)
def test_refused_at_save_model_and_serializer_validator(url, strict, stubbed, org):
    with pytest.raises(BlockedDestination):
        validate_outbound_url(url)
    from django.core.exceptions import ValidationError

    conn = Connection(organization=org, kind="woocommerce", name="x", base_url=url)
    with pytest.raises(ValidationError):
        conn.full_clean()
    from rest_framework.exceptions import ValidationError as DRFValidationError

    from sync.api.serializers import ConnectionSerializer

    # The field is read-only on the API today (see test_api_cannot_write_base_url); its validators carry the rule.
    field = ConnectionSerializer().fields["base_url"]
    with pytest.raises((ValidationError, DRFValidationError)):
        field.run_validators(url)


@pytest.fixture
def fake_kind(monkeypatch):
    from sync import registry

    monkeypatch.setitem(registry.KINDS, "fake", "tests.fakes.connector")
    registry.get_connector.cache_clear()
    yield
    registry.get_connector.cache_clear()


@pytest.mark.parametrize("url", REFUSED)
def test_refused_at_save_admin_form(url, client, staff, org, strict, stubbed, fake_kind):
    client.force_login(staff)
    data = {
        "organization": org.pk,
        "kind": "fake",
        "name": "Sneaky",
        "base_url": url,
        "external_account_id": "",
        "config": "{}",
        "is_active": "on",
    }
    response = client.post(reverse("admin:connectors_connection_add"), data)
    assert response.status_code == 200
    assert not Connection.objects.filter(name="Sneaky").exists()


def test_api_cannot_write_base_url(client, staff, org, make_connection, strict, stubbed):
    conn = make_connection(org, base_url="https://shop.example")
    client.force_login(staff)
    for method in ("patch", "put"):
        response = getattr(client, method)(
            f"/api/connections/{conn.pk}/",
            json.dumps({"base_url": "http://169.254.169.254/"}),
            content_type="application/json",
        )
        conn.refresh_from_db()
        assert conn.base_url == "https://shop.example", (method, response.status_code)


# --- 3. signed deeply nested bodies ---------------------------------------------------------------------
DEEP = b"[" * 200_000 + b"]" * 200_000


def test_woocommerce_signed_deep_body_is_json_400(client, org, make_connection):
    conn = make_connection(org, base_url="https://shop.example", credentials={"webhook_secret": "s3cret"})
    response = client.post(
        f"/connectors/woocommerce/webhooks/{conn.pk}/",
        DEEP,
        content_type="application/json",
        HTTP_X_WC_WEBHOOK_SIGNATURE=signature_for(DEEP, "s3cret"),
        HTTP_X_WC_WEBHOOK_TOPIC="product.updated",
    )
    assert response.status_code in (400, 413) and response["Content-Type"] == "application/json"


def test_tiendanube_signed_deep_body_is_json_400(client, settings, org, make_connection):
    import hashlib
    import hmac

    settings.TIENDANUBE_CLIENT_SECRET = "tn-secret"
    body = b'{"store_id": 1001, "event": "product/updated", "id": ' + DEEP + b"}"
    sig = hmac.new(b"tn-secret", body, hashlib.sha256).hexdigest()
    response = client.post(
        "/connectors/tiendanube/webhooks/", body, content_type="application/json", HTTP_X_LINKEDSTORE_HMAC_SHA256=sig
    )
    assert response.status_code in (400, 401, 413) and response["Content-Type"] == "application/json"


MULE_SECRET = "push-secret-0123456789"


@pytest.fixture
def mule(org, make_connection):
    return make_connection(org, kind="mulesoft", name="MuleSoft", credentials={"push_secret": MULE_SECRET})


def test_mulesoft_signed_deep_body_is_json_400(mule, fake_clock):
    ts = int(fake_clock.now().timestamp())
    body = b'{"tiers": ' + DEEP + b"}"
    response = Client().post(
        f"/connectors/mulesoft/push/{mule.pk}/",
        body,
        content_type="application/json",
        HTTP_X_SYNCHUB_TIMESTAMP=str(ts),
        HTTP_X_SYNCHUB_SIGNATURE=mule_sign(MULE_SECRET, ts, body),
    )
    assert response.status_code in (400, 413) and response["Content-Type"] == "application/json"


# --- HTML from machine routes -----------------------------------------------------------------------------
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path_method",
    [
        ("/connectors/mulesoft/push/{pk}/", "get"),
        ("/connectors/mulesoft/push/{pk}/nope/", "post"),
        ("/connectors/mulesoft/push/99999999999999999999999/", "post"),
        ("/connectors/woocommerce/webhooks/{pk}/", "get"),
        ("/connectors/woocommerce/webhooks/abc/", "post"),
        ("/connectors/tiendanube/webhooks/", "get"),
        ("/api/nope/", "get"),
        ("/api/connections/", "delete"),
    ],
)
def test_no_html_from_machine_routes(debug, path_method, settings, mule, staff):
    settings.DEBUG = debug
    path, method = path_method
    c = Client(raise_request_exception=False)
    c.force_login(staff)
    response = getattr(c, method)(path.format(pk=mule.pk))
    assert response.status_code >= 400
    assert response["Content-Type"].startswith("application/json"), (
        path,
        response.status_code,
        response["Content-Type"],
    )


def test_mulesoft_signed_odd_timestamp_is_not_a_500(mule, fake_clock):
    """'²'.isdigit() is True but int('²') raises; a huge timestamp overflows datetime."""
    body = json.dumps({"tiers": [{"id": "gold", "code": "GOLD", "name": "Gold"}]}).encode()
    for ts in ("\u00b2", "9" * 30):
        response = Client(raise_request_exception=False).post(
            f"/connectors/mulesoft/push/{mule.pk}/",
            body,
            content_type="application/json",
            HTTP_X_SYNCHUB_TIMESTAMP=ts,
            HTTP_X_SYNCHUB_SIGNATURE=mule_sign(MULE_SECRET, ts, body),
        )
        assert response.status_code == 401 and response["Content-Type"] == "application/json", (
            ts,
            response.status_code,
        )


# --- 4. unsigned WooCommerce ping flood --------------------------------------------------------------------
def test_ping_flood_writes_at_most_the_limit(client, org, make_connection):
    from sync.models import SyncActivity

    cache.clear()
    conn = make_connection(org, base_url="https://shop.example", credentials={"webhook_secret": "s3cret"})
    url = f"/connectors/woocommerce/webhooks/{conn.pk}/"
    for n in range(200):
        assert client.post(url, f"webhook_id={n}", content_type="application/x-www-form-urlencoded").status_code == 200
    # junk unsigned bodies: refused, and how many activity rows do they write?
    before = SyncActivity.objects.count()
    for n in range(50):
        client.post(url, f"junk{n}", content_type="application/json")
    assert SyncActivity.objects.filter(connection=conn, event="webhook.ping").count() <= 10
    assert SyncActivity.objects.count() - before <= 10, "unsigned junk bodies fill the activity log"
    cache.clear()


# --- extra: header injection in the WooCommerce topic --------------------------------------------------------
def test_topic_header_with_newlines_does_not_forge_log_lines(client, org, make_connection, caplog):
    conn = make_connection(org, base_url="https://shop.example", credentials={"webhook_secret": "s3cret"})
    body = json.dumps({"id": 5, "name": "x", "sku": "a"}).encode()
    topic = "order.updated\r\nCRITICAL forged line"
    with caplog.at_level(logging.DEBUG):
        response = client.post(
            f"/connectors/woocommerce/webhooks/{conn.pk}/",
            body,
            content_type="application/json",
            HTTP_X_WC_WEBHOOK_SIGNATURE=signature_for(body, "s3cret"),
            HTTP_X_WC_WEBHOOK_TOPIC=topic,
        )
    assert response.status_code < 500
    assert not any("\n" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


# --- extra: oversized query string on OAuth callbacks ------------------------------------------------------
@pytest.mark.parametrize("path", ["/connectors/lightspeed/oauth/callback/", "/connectors/tiendanube/oauth/callback/"])
def test_oversized_query_on_oauth_callback(path, client, staff):
    client.force_login(staff)
    response = client.get(path + "?code=x&state=" + "A" * 100_000)
    assert response.status_code == 400


# --- extra: userinfo / IDN homograph in base_url -----------------------------------------------------------
def test_base_url_with_userinfo_is_refused_at_save(strict, dns, org):
    """Credentials in base_url would be shown in the admin, the API and logs as plain text."""
    from django.core.exceptions import ValidationError

    dns({"shop.example": ["93.184.216.34"]})
    conn = Connection(
        organization=org, kind="woocommerce", name="x", base_url="https://ck_admin:cs_s3cret@shop.example/"
    )
    with pytest.raises(ValidationError):
        conn.full_clean()


def test_idn_and_fullwidth_hosts_resolve_through_the_rule(strict, monkeypatch):
    import socket

    seen = []

    def fake(host, port, *a, **k):
        seen.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    for url in (
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",
        "http://xn--pple-43d.com/",
        "http://\u0430pple.com/",
    ):
        with pytest.raises(BlockedDestination):
            validate_outbound_url(url)


# --- extra: alerts webhook URL --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://internal.example/",
        "http://user:pw-77@10.0.0.1/",
        "http://0x7f000001/",
    ],
)
def test_alert_rule_webhook_url_refused(url, strict, stubbed, org, make_connection):
    from alerts.admin import AlertRuleForm

    conn = make_connection(org, base_url="https://shop.example")
    form = AlertRuleForm(
        data={
            "organization": org.pk,
            "connection": conn.pk,
            "enabled": "on",
            "failure_streak": 3,
            "freshness": "",
            "webhook_url": url,
        }
    )
    assert not form.is_valid()
    assert "webhook_url" in form.errors
    assert "pw-77" not in str(form.errors)  # the stored URL is a secret; the error does not echo it


# --- 4b. the flood through forged signatures (an unsigned request with any signature header) --------------
def test_forged_signature_flood_does_not_fill_the_activity_log(client, org, make_connection):
    from sync.models import SyncActivity

    cache.clear()
    conn = make_connection(org, base_url="https://shop.example", credentials={"webhook_secret": "s3cret"})
    url = f"/connectors/woocommerce/webhooks/{conn.pk}/"
    for n in range(100):
        response = client.post(
            url, f'{{"id": {n}}}', content_type="application/json", HTTP_X_WC_WEBHOOK_SIGNATURE="Zm9yZ2Vk"
        )
        assert response.status_code == 401
    assert SyncActivity.objects.filter(connection=conn, event="webhook.rejected").count() <= 10
    cache.clear()


def test_forged_mulesoft_push_flood_does_not_fill_the_activity_log(mule, fake_clock):
    from sync.models import SyncActivity

    cache.clear()
    c = Client()
    for n in range(100):
        response = c.post(
            f"/connectors/mulesoft/push/{mule.pk}/",
            f'{{"n": {n}}}',
            content_type="application/json",
            HTTP_X_SYNCHUB_TIMESTAMP="1",
            HTTP_X_SYNCHUB_SIGNATURE="sha256=00",
        )
        assert response.status_code == 401
    assert SyncActivity.objects.filter(connection=mule, event="webhook.rejected").count() <= 10
    cache.clear()


def test_username_spelling_variants_count_against_the_same_user(staff):
    """' staff ', fullwidth letters: the login form normalises them to the same user, so must the lockout."""
    cache.clear()
    staff.set_password("right-password-123")
    staff.save()
    fullwidth = "".join(chr(ord(ch) + 0xFEE0) if ch.isascii() and ch.isalnum() else ch for ch in staff.username)
    for n, variant in enumerate([f" {staff.username} ", fullwidth, staff.username.upper()] * 3):
        Client(REMOTE_ADDR=f"203.0.113.{n + 1}").post("/admin/login/", {"username": variant, "password": "wrong"})
    right = Client(REMOTE_ADDR="198.51.100.7").post(
        "/admin/login/?next=/admin/", {"username": staff.username, "password": "right-password-123"}
    )
    assert right.status_code == 429


# --- extra: the MuleSoft endpoint setting is a configured outbound URL too -----------------------------------
@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/", "http://[2002:a9fe:a9fe::1]/", "http://internal.example/"]
)
def test_mulesoft_endpoint_setting_is_refused_at_save_in_the_admin(url, client, staff, org, strict, stubbed):
    from connectors.mulesoft import conf as mule_conf
    from sync.models import SystemSetting

    client.force_login(staff)
    response = client.post(
        reverse("admin:sync_systemsetting_add"),
        {"organization": org.pk, "key": mule_conf.ENDPOINT_SETTING, "value": json.dumps(url), "description": ""},
    )
    assert response.status_code == 200 and "not allowed" in response.content.decode()
    assert not SystemSetting.objects.filter(key=mule_conf.ENDPOINT_SETTING).exists()
    assert not Connection.objects.filter(kind="mulesoft").exists()
