"""Issue 17: brute force on /admin/login/ is locked out (django-axes) per username and per client address,
configurable, logged, visible in the admin; no wall-clock sleeps (the cool-off is passed by ageing the
recorded attempts)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AXES_FAILURE_LIMIT = 5


def attempt(username: str, password: str, ip: str = "198.51.100.7"):
    client = Client(REMOTE_ADDR=ip)
    response = client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})
    return client, response


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_wrong_passwords_lock_the_user_out_even_with_the_right_one(staff):
    answers = [attempt("alice", f"wrong-{n}")[1].status_code for n in range(5)]
    assert answers[:4] == [200, 200, 200, 200]  # the form again, with an error
    assert answers[4] == 429
    client, response = attempt("alice", "pw-alice")
    assert response.status_code == 429 and not logged_in(client)


def test_the_lockout_is_per_username_from_any_address(staff):
    for n in range(5):
        attempt("alice", f"wrong-{n}", ip=f"203.0.113.{n + 1}")
    client, response = attempt("alice", "pw-alice", ip="192.0.2.99")
    assert response.status_code == 429 and not logged_in(client)


def test_the_lockout_is_per_address_whatever_the_username(staff, other_staff):
    for n in range(5):
        attempt(f"nobody-{n}", "guess", ip="203.0.113.50")
    client, response = attempt("bob", "pw-bob", ip="203.0.113.50")
    assert response.status_code == 429 and not logged_in(client)
    client, response = attempt("bob", "pw-bob", ip="192.0.2.10")  # another address, another user: fine
    assert response.status_code == 302 and logged_in(client)


def test_a_success_before_the_limit_resets_the_count(staff):
    for n in range(4):
        attempt("alice", f"wrong-{n}")
    client, response = attempt("alice", "pw-alice")
    assert response.status_code == 302 and logged_in(client)
    for n in range(4):
        assert attempt("alice", f"wrong-again-{n}")[1].status_code == 200


def test_the_lockout_ends_after_the_cool_off(staff, settings):
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=15)
    for n in range(5):
        attempt("alice", f"wrong-{n}")
    assert attempt("alice", "pw-alice")[1].status_code == 429
    # Age the recorded failures past the cool-off instead of sleeping.
    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))
    client, response = attempt("alice", "pw-alice")
    assert response.status_code == 302 and logged_in(client)


def test_the_limit_is_configurable(staff, settings):
    settings.AXES_FAILURE_LIMIT = 2
    attempt("alice", "wrong-1")
    assert attempt("alice", "wrong-2")[1].status_code == 429


def test_lockouts_are_logged_without_the_password(staff, caplog):
    with caplog.at_level(logging.INFO):
        for n in range(5):
            attempt("alice", f"s3cret-guess-{n}")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "alice" in text and "after repeated login failures" in text
    assert "s3cret-guess" not in text


def test_superusers_see_the_lockouts_in_the_admin(staff, superuser):
    for n in range(5):
        attempt("alice", f"wrong-{n}")
    admin = Client()
    admin.force_login(superuser)
    page = admin.get(reverse("admin:axes_accessattempt_changelist"))
    assert page.status_code == 200 and "alice" in page.content.decode()
    assert admin.get(reverse("admin:axes_accessfailurelog_changelist")).status_code == 200
    assert admin.get(reverse("admin:axes_accesslog_changelist")).status_code == 200
