"""Issue 17: one address rule (core.http.refusal_reason) at save time (model clean, admin form) and at
request time (the guarded connection), with the loopback / private allowances for the sandboxes."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from connectors.base import Client, PermanentError
from connectors.models import Connection
from core.http import BlockedDestination, address_allowed, guarded_session, validate_outbound_url

REFUSED_LITERALS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://127.0.0.1:5432",
    "http://[::1]:5432",
    "http://0.0.0.0:5432",
    "http://0.1.2.3/",
    "http://10.0.0.1",
    "http://192.168.1.1",
    "http://172.16.0.1",
    "http://100.64.0.1",  # carrier-grade NAT
    "http://100.127.255.254",
    "http://100.100.100.200/",  # Alibaba metadata
    "http://[fd00:ec2::254]/",  # AWS metadata (IPv6)
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
    "http://[2002:808:808::1]/",  # 6to4, even of a public address
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of the metadata address
    "http://[64:ff9b:1::a00:1]/",  # local-use NAT64
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://[::a9fe:a9fe]/",  # IPv4-compatible
    "http://[ff02::1]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
]
NUMERIC_HOSTS = [
    "http://2130706433/",  # 127.0.0.1 as an integer
    "http://0x7f000001/",
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",  # octal
    "http://127.1/",
    "http://2852039166/",  # 169.254.169.254 as an integer
    "http://0xa9fea9fe/",
    "http://017700000001/",
    "http://8.8.8.010/",  # octal last part: not the dotted decimal it looks like
]


@pytest.fixture
def strict(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    settings.OUTBOUND_ALLOW_PRIVATE = False
    return settings


@pytest.mark.parametrize("url", REFUSED_LITERALS)
def test_refused_literal_addresses(url, strict, dns):
    dns({})  # a literal is never resolved: any lookup of a name fails the test
    with pytest.raises(BlockedDestination):
        validate_outbound_url(url)


@pytest.mark.parametrize("url", NUMERIC_HOSTS)
def test_numeric_host_forms_are_refused_even_with_allowances(url, settings, dns):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.OUTBOUND_ALLOW_PRIVATE = True
    dns({})
    with pytest.raises(BlockedDestination, match="numeric form"):
        validate_outbound_url(url)


def test_numeric_host_forms_are_refused_at_request_time_before_any_lookup(settings, dns, monkeypatch):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    looked_up = dns({})
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("connect reached"))
    with pytest.raises(Exception, match="numeric form"):
        guarded_session().get("http://2130706433:1/", allow_redirects=False, timeout=1)
    assert looked_up == []


@pytest.mark.parametrize(
    "ip", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "100.63.255.255", "100.128.0.1"]
)
def test_public_addresses_pass(ip, strict):
    assert address_allowed(ip)


def test_allowances_keep_working_for_the_sandboxes(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.OUTBOUND_ALLOW_PRIVATE = False
    assert address_allowed("127.0.0.1") and address_allowed("::1") and address_allowed("::ffff:127.0.0.1")
    assert not address_allowed("10.0.0.1") and not address_allowed("100.64.0.1")
    settings.OUTBOUND_ALLOW_PRIVATE = True
    assert address_allowed("10.0.0.1") and address_allowed("100.64.0.1") and address_allowed("fc00::1")
    # Never, whatever the allowances: metadata, link-local, this-network, tunnels.
    for ip in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "0.0.0.0", "2002:7f00:1::", "64:ff9b::7f00:1"):
        assert not address_allowed(ip), ip


def test_host_name_resolving_to_a_refused_address_is_refused_at_save(strict, dns):
    looked_up = dns({"metadata.attacker.example": ["93.184.216.34", "169.254.169.254"]})
    with pytest.raises(BlockedDestination, match="169.254.169.254"):
        validate_outbound_url("https://metadata.attacker.example/wp-json/")
    assert looked_up == ["metadata.attacker.example"]


def test_host_name_resolving_to_public_addresses_passes(strict, dns):
    looked_up = dns({"shop.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    validate_outbound_url("https://shop.example/wp-json/wc/v3/")
    assert looked_up == ["shop.example"]


def test_unresolvable_host_is_refused_at_save(strict, monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(BlockedDestination, match="cannot resolve"):
        validate_outbound_url("https://nowhere.example/")


def test_model_validation_reports_the_field(strict, org, dns):
    dns({})
    conn = Connection(organization=org, kind="woocommerce", name="x", base_url="http://[::ffff:169.254.169.254]/")
    with pytest.raises(ValidationError) as info:
        conn.full_clean()
    assert "base_url" in info.value.message_dict
    assert "not allowed" in info.value.message_dict["base_url"][0]


@pytest.fixture
def fake_kind_admin(monkeypatch):
    from sync import registry

    monkeypatch.setitem(registry.KINDS, "fake", "tests.fakes.connector")
    registry.get_connector.cache_clear()
    yield
    registry.get_connector.cache_clear()


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://100.64.0.1/", "http://0x7f000001/"])
def test_admin_form_refuses_at_save_and_says_why(url, client, staff, org, strict, dns, fake_kind_admin):
    dns({})
    client.force_login(staff)
    response = client.post(
        reverse("admin:connectors_connection_add"),
        {
            "organization": org.pk,
            "kind": "fake",
            "name": "Sneaky",
            "base_url": url,
            "external_account_id": "",
            "config": "{}",
            "is_active": "on",
        },
    )
    assert response.status_code == 200  # the form again, not a redirect
    body = response.content.decode()
    # Django's URLField already refuses some numeric forms as malformed; the address rule says why for the rest.
    assert "This address is not allowed" in body or ("0x7f" in url and "Enter a valid URL" in body)
    assert not Connection.objects.filter(name="Sneaky").exists()


def test_admin_form_resolves_host_names_at_save(client, staff, org, strict, dns, fake_kind_admin):
    looked_up = dns({"internal.example": ["10.1.2.3"]})
    client.force_login(staff)
    response = client.post(
        reverse("admin:connectors_connection_add"),
        {
            "organization": org.pk,
            "kind": "fake",
            "name": "Internal",
            "base_url": "https://internal.example/",
            "external_account_id": "",
            "config": "{}",
            "is_active": "on",
        },
    )
    assert response.status_code == 200 and "10.1.2.3" in response.content.decode()
    assert looked_up == ["internal.example"] and not Connection.objects.filter(name="Internal").exists()


def test_request_time_uses_the_same_rule(strict, dns, monkeypatch):
    dns({"tunnel.example": ["2002:a9fe:a9fe::1"]})
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("connect reached"))
    client = Client(type("C", (), {"base_url": "http://tunnel.example/"})())
    with pytest.raises(PermanentError):
        client.request("GET", "/customers")


def test_a_loopback_server_redirecting_to_metadata_is_not_followed(settings):
    from connectors.sandbox.server import Response, SandboxApp, serve

    settings.OUTBOUND_ALLOW_LOOPBACK = True
    app = SandboxApp()

    @app.route("GET", r"/start")
    def start(req):
        return Response(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"})

    with serve(app) as base_url:
        validate_outbound_url(base_url)  # loopback allowed for the sandbox
        with pytest.raises(PermanentError, match="redirect"):
            Client(type("C", (), {"base_url": base_url})()).request("GET", "/start")
