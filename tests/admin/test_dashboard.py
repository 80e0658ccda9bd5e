from django.test import Client
from django.urls import reverse

from sync.models import SyncActivity, SyncQueue

DASHBOARD = "admin:sync_dashboard"


def test_admin_index_links_the_dashboard(staff_client):
    response = staff_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert reverse(DASHBOARD).encode() in response.content


def test_dashboard_shows_own_connections_with_status(staff_client, fake_conn, other_conn, fake_kind):
    fake_kind.__init__(3)
    from sync import services

    services.sync_start(connection=fake_conn, resource="customers")
    response = staff_client.get(reverse(DASHBOARD))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Acme shop" in body and "Globex shop" not in body
    assert f'data-testid="resource-{fake_conn.pk}-customers"' in body
    assert "Success" in body and "100%" in body


def test_dashboard_query_count_does_not_grow_with_connections(
    staff_client, org, make_connection, fake_kind, django_assert_max_num_queries
):
    for i in range(15):
        make_connection(org, kind="fake", name=f"shop {i}")
    # constant in N: see test_console_truth for two sizes (15: the page's fingerprint, two aggregates, is part)
    with django_assert_max_num_queries(15):
        response = staff_client.get(reverse(DASHBOARD))
    assert response.content.decode().count('aria-label="Sync now: ') == 15


def test_sync_now_starts_a_manual_run_as_the_user(staff_client, staff, fake_conn, fake_kind):
    fake_kind.__init__(4)
    response = staff_client.post(
        reverse("admin:sync_dashboard_sync"), {"connection": fake_conn.pk, "resource": "customers"}
    )
    assert response.status_code == 302 and response.url == reverse(DASHBOARD)
    queue = SyncQueue.objects.get(connection=fake_conn)
    assert queue.origin == "manual" and queue.created_by == staff and queue.state == "done" and queue.done_count == 4
    assert SyncActivity.objects.filter(queue=queue, event="queue.created", actor=staff).exists()


def test_sync_now_is_post_only_and_csrf_protected(staff, fake_conn):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    url = reverse("admin:sync_dashboard_sync")
    assert client.get(url).status_code == 405
    assert client.post(url, {"connection": fake_conn.pk, "resource": "customers"}).status_code == 403
    assert not SyncQueue.objects.exists()


def test_sync_now_on_another_organizations_connection_does_nothing(staff_client, other_conn):
    response = staff_client.post(
        reverse("admin:sync_dashboard_sync"), {"connection": other_conn.pk, "resource": "customers"}, follow=True
    )
    assert "No such connection" in response.content.decode()
    assert not SyncQueue.objects.exists()


def test_sync_now_service_error_is_a_message_not_a_500(staff_client, fake_conn):
    response = staff_client.post(
        reverse("admin:sync_dashboard_sync"), {"connection": fake_conn.pk, "resource": "nope"}, follow=True
    )
    assert response.status_code == 200
    assert "has no resource" in response.content.decode()


def test_connection_needing_reauth_stands_out_with_a_reconnect_link(staff_client, fake_conn):
    fake_conn.needs_reauth = True
    fake_conn.save()
    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    assert f'data-testid="reauth-{fake_conn.pk}"' in body
    # The fake kind exposes no /connectors/fake/connect/<id>/ view: the link falls back to the admin page.
    assert reverse("admin:connectors_connection_change", args=[fake_conn.pk]) in body
    assert f'data-testid="sync-now-{fake_conn.pk}-customers"' not in body


def test_anonymous_and_non_staff_are_sent_to_login(client, django_user_model):
    assert client.get(reverse(DASHBOARD)).status_code == 302
    user = django_user_model.objects.create_user("carol", password="x")
    client.force_login(user)
    response = client.get(reverse(DASHBOARD))
    assert response.status_code == 302 and "login" in response.url


def test_the_page_polls_from_the_fingerprint_it_was_rendered_with(staff_client, fake_conn, fake_kind):
    """A run started while the page is on its way to the browser must still show: the page carries the
    fingerprint of what it shows, and its first poll compares with that (it used to take the first poll's
    answer as its starting point, so such a change never showed; a browser test caught it under load)."""
    import html
    import re

    from sync import services

    body = staff_client.get(reverse(DASHBOARD)).content.decode()
    rendered = html.unescape(re.search(r'data-sh-watch-version="([^"]*)"', body).group(1))
    state_url = html.unescape(re.search(r'data-sh-watch-url="([^"]*)"', body).group(1))
    assert rendered and staff_client.get(state_url).json()["version"] == rendered  # unchanged: no refresh
    services.sync_start(connection=fake_conn, resource="customers", enqueue=False)
    assert staff_client.get(state_url).json()["version"] != rendered  # the first poll refreshes the rows
