"""The admin's frame: SyncHub's header and title, and django-q2 links only for users who may open them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

Q_PAGES = ("schedule", "ormq", "success", "failure")


def test_header_and_title_say_synchub(staff_client):
    body = staff_client.get(reverse("admin:index")).content.decode()
    assert "Django administration" not in body
    assert '<a href="/admin/">SyncHub</a>' in body
    assert "<title>Operations console | SyncHub</title>" in body


def test_staff_without_django_q_permissions_sees_no_link_that_would_403(staff_client):
    body = staff_client.get(reverse("admin:sync_dashboard")).content.decode()
    for name in Q_PAGES:
        url = reverse(f"admin:django_q_{name}_changelist")
        assert url not in body
        assert staff_client.get(url).status_code == 403  # why the link must not be shown


def test_superuser_sees_every_django_q_link_and_each_opens(client, superuser):
    client.force_login(superuser)
    body = client.get(reverse("admin:sync_dashboard")).content.decode()
    for name in Q_PAGES:
        url = reverse(f"admin:django_q_{name}_changelist")
        assert url in body
        assert client.get(url).status_code == 200


@pytest.mark.parametrize("granted", [("view_schedule",), ("view_failure", "view_success")])
def test_staff_sees_exactly_the_django_q_pages_they_were_granted(staff_client, staff, granted):
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_q", codename__in=granted))
    body = staff_client.get(reverse("admin:sync_dashboard")).content.decode()
    for name in Q_PAGES:
        url = reverse(f"admin:django_q_{name}_changelist")
        assert (url in body) == (f"view_{name}" in granted), name
        if url in body:
            assert staff_client.get(url).status_code == 200
