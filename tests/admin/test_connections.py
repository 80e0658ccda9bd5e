import pytest
from django.urls import reverse

from connectors.base import AuthError
from connectors.models import Connection
from tests import fakes


@pytest.fixture
def with_secret_field(monkeypatch, fake_kind):
    monkeypatch.setattr(fakes.connector, "secret_fields", ("token",))


def _form_data(conn, **secrets):
    data = {
        "organization": conn.organization_id,
        "kind": conn.kind,
        "name": conn.name,
        "base_url": conn.base_url,
        "external_account_id": "",
        "config": "{}",
        "is_active": "on",
    }
    data.update({f"secret__{k}": v for k, v in secrets.items()})
    return data


def test_secrets_are_never_rendered_back(staff_client, fake_conn, with_secret_field):
    body = staff_client.get(reverse("admin:connectors_connection_change", args=[fake_conn.pk])).content.decode()
    assert 'name="secret__token"' in body and 'type="password"' in body
    assert "s3cr3t-token-value" not in body and fake_conn.credentials_encrypted not in body
    assert "A value is stored" in body


def test_empty_secret_keeps_the_stored_value_and_a_new_one_replaces_it(staff_client, fake_conn, with_secret_field):
    url = reverse("admin:connectors_connection_change", args=[fake_conn.pk])
    assert staff_client.post(url, _form_data(fake_conn, token="")).status_code == 302
    assert Connection.objects.get(pk=fake_conn.pk).credentials == {"token": "s3cr3t-token-value"}
    assert staff_client.post(url, _form_data(fake_conn, token="brand-new-token")).status_code == 302
    assert Connection.objects.get(pk=fake_conn.pk).credentials == {"token": "brand-new-token"}
    body = staff_client.get(url).content.decode()
    assert "brand-new-token" not in body


def test_add_connection_encrypts_secrets(staff_client, org, with_secret_field, dns):
    dns({"shop.example": ["93.184.216.34"]})  # the address rule resolves the host at save
    response = staff_client.post(
        reverse("admin:connectors_connection_add"),
        {
            "organization": org.pk,
            "kind": "fake",
            "name": "New shop",
            "base_url": "https://shop.example",
            "external_account_id": "",
            "config": "{}",
            "is_active": "on",
            "secret__token": "tok-123456",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    conn = Connection.objects.get(name="New shop")
    assert conn.credentials == {"token": "tok-123456"} and "tok-123456" not in conn.credentials_encrypted


def _test_action(client, conn):
    return client.post(
        reverse("admin:connectors_connection_changelist"),
        {"action": "test_connection", "_selected_action": [conn.pk]},
        follow=True,
    )


def test_test_connection_reports_what_the_upstream_said(staff_client, fake_conn, fake_kind):
    fake_kind.__init__(3)
    body = _test_action(staff_client, fake_conn).content.decode()
    assert "Acme shop: OK: customers answered with 3 record(s)" in body
    assert Connection.objects.get(pk=fake_conn.pk).health == "ok"


def test_test_connection_auth_failure_marks_needs_reauth(staff_client, fake_conn, fake_kind):
    fake_kind.fail_pages[0] = AuthError("401 Unauthorized: invalid consumer key", status=401)
    body = _test_action(staff_client, fake_conn).content.decode()
    assert "authentication refused" in body and "invalid consumer key" in body
    conn = Connection.objects.get(pk=fake_conn.pk)
    assert conn.needs_reauth and conn.health == "down"
    assert "reconnect" in staff_client.get(reverse("admin:connectors_connection_changelist")).content.decode()


def test_changelist_shows_health_and_reauth(staff_client, fake_conn):
    Connection.objects.filter(pk=fake_conn.pk).update(needs_reauth=True, health="down")
    body = staff_client.get(reverse("admin:connectors_connection_changelist")).content.decode()
    assert "Down" in body and "reconnect" in body


def test_read_mostly_domain_admins_load(staff_client, fake_conn, fake_kind):
    from sync import services

    fake_kind.__init__(2)
    services.sync_start(connection=fake_conn, resource="customers")
    for name in ("customers_customer", "customers_loyaltytier", "commerce_product", "commerce_order"):
        assert staff_client.get(reverse(f"admin:{name}_changelist"), {"q": "user1"}).status_code == 200
    assert "user1@example.com" in staff_client.get(reverse("admin:customers_customer_changelist")).content.decode()
    assert staff_client.get(reverse("admin:customers_customer_add")).status_code == 403


def test_clear_secrets_removes_every_stored_secret(staff_client, fake_conn, with_secret_field):
    url = reverse("admin:connectors_connection_change", args=[fake_conn.pk])
    assert staff_client.post(url, {**_form_data(fake_conn), "clear_secrets": "on"}).status_code == 302
    conn = Connection.objects.get(pk=fake_conn.pk)
    assert conn.credentials == {}
    assert "Not set." in staff_client.get(url).content.decode()


def test_an_erased_customer_is_marked_as_such_in_the_admin(staff_client, fake_conn, org):
    """A customer erased on request (a privacy redact) is a blank row: the list says it was erased, and its
    page is titled by its id, not by an empty name."""
    from customers.models import Customer
    from sync.records import ERASED

    erased = Customer.objects.create(organization=org, connection=fake_conn, external_id="77", sync_hash=ERASED)
    Customer.objects.create(organization=org, connection=fake_conn, external_id="78", first_name="Ana")
    page = staff_client.get(reverse("admin:customers_customer_changelist")).content.decode()
    assert '<td class="field-state">erased on request</td>' in page
    assert '<td class="field-state">live</td>' in page
    assert str(erased) == "customer 77"
    detail = staff_client.get(reverse("admin:customers_customer_change", args=[erased.pk])).content.decode()
    assert "customer 77" in detail
