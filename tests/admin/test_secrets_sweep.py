"""Every admin page (each registered model's list and the change page of each of its rows, as a superuser,
who sees the most) after connections of every kind were given credentials: no stored secret comes back."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

SECRETS = {
    "woocommerce": {"consumer_key": "ck_pl4nted0001", "consumer_secret": "cs_pl4nted0002", "webhook_secret": "wh0003"},
    "lightspeed": {"access_token": "ls-access-pl4nted0004", "refresh_token": "ls-refresh-pl4nted0005"},
    "tiendanube": {"access_token": "tn-token-pl4nted0006"},
    "mulesoft": {"access_token": "ms-token-pl4nted0007"},
    "mdm": {"api_key": "mdm-key-pl4nted0008"},
}


def test_no_admin_page_renders_a_stored_secret(client, superuser, org, make_connection, fake_kind):
    from sync import services

    for kind, credentials in SECRETS.items():
        make_connection(org, kind=kind, name=f"{kind} secret holder", credentials=credentials)
    fake_kind.__init__(2)
    fake = make_connection(org, kind="fake", name="fake", credentials={"token": "fake-token-pl4nted0009"})
    services.sync_start(connection=fake, resource="customers")  # a queue, lines, a status and activity rows
    client.force_login(superuser)
    planted = [v for creds in SECRETS.values() for v in creds.values()] + ["fake-token-pl4nted0009"]
    pages = 0
    for model in apps.get_models():
        if not admin.site.is_registered(model):
            continue
        meta = model._meta
        try:
            changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        except NoReverseMatch:
            continue
        urls = [changelist] + [
            reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk])
            for pk in model._default_manager.values_list("pk", flat=True)[:5]
        ]
        for url in urls:
            response = client.get(url)
            assert response.status_code in (200, 302, 403), (url, response.status_code)
            body = response.content.decode(errors="replace")
            for secret in planted:
                assert secret not in body, (url, secret)
            pages += 1
    assert pages > 20  # the sweep really walked the admin
