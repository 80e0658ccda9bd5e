from django.urls import reverse

from .conftest import WEBHOOK_SECRET


def test_webhook_setup_is_org_scoped_and_secret_free(client, staff, other_staff, org, make_connection):
    conn = make_connection(org, base_url="https://shop.example", credentials={"webhook_secret": WEBHOOK_SECRET})
    url = reverse("woocommerce-webhook-setup", args=[conn.pk])
    assert client.get(url).status_code in (401, 403)
    client.force_login(staff)
    r = client.get(url)
    assert r.status_code == 200
    body = r.json()
    assert body["delivery_url"].endswith(f"/connectors/woocommerce/webhooks/{conn.pk}/")
    assert body["secret_configured"] is True and WEBHOOK_SECRET not in r.content.decode()
    client.force_login(other_staff)
    assert client.get(url).status_code == 404
