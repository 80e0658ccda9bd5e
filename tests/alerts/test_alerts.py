"""Alerts for every connection (alerts/): failure streaks on run end, staleness on the schedule, one incident
and one alert per problem, one recovery when it clears, email to the organization's admins, an optional
Slack-compatible webhook through the outbound guard. Time is a fake clock."""

import datetime as dt

import pytest
from django.core import mail
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext

from alerts import services, tasks
from alerts.models import AlertRule, Incident, Notification
from sync import runpolicy
from sync.models import Lane, Membership, QueueState, StatusState, SyncQueue, SyncStatus
from sync.signals import sync_run_finished

pytestmark = pytest.mark.django_db

TOKEN = "xoxb1234567890secret"


def finish(conn, resource, *, ok, error="HTTP 500 from upstream"):
    """A run reaching its final state, announced as queue_finalize announces it (on commit)."""
    queue = SyncQueue.objects.create(
        organization=conn.organization,
        connection=conn,
        resource=resource,
        lane=Lane.RUN,
        state=QueueState.DONE if ok else QueueState.FAILED,
        is_active=False,
        last_error="" if ok else error,
    )
    if ok:
        SyncStatus.objects.update_or_create(
            connection=conn,
            resource=resource,
            defaults={"organization": conn.organization, "state": StatusState.SUCCESS, "last_success_at": _now()},
        )
    sync_run_finished.send(sender=SyncQueue, queue=queue, succeeded=ok)
    return queue


def _now():
    from core import clock

    return clock.now()


@pytest.fixture
def admin_email(staff):
    staff.email = "alice@example.com"
    staff.save()
    return staff.email


@pytest.fixture
def shop(org, make_connection, admin_email):
    """A WooCommerce store syncing every 15 minutes (freshness target: 45 minutes)."""
    return make_connection(
        org, name="Main shop", config={"sync_every_minutes": 15}, credentials={"consumer_secret": "cs_" + TOKEN}
    )


def alerts_of(conn):
    return list(Incident.objects.filter(connection=conn).order_by("id"))


def test_streak_opens_one_incident_one_email_then_one_recovery(shop, fake_clock, django_user_model, org):
    member = django_user_model.objects.create_user("carol", email="carol@example.com", is_staff=True)
    Membership.objects.create(user=member, organization=org, role="member")  # not an admin: no mail
    finish(shop, "orders", ok=False)
    finish(shop, "orders", ok=False)
    assert alerts_of(shop) == [] and mail.outbox == []
    finish(shop, "orders", ok=False)  # the policy's failure_streak: 3
    [incident] = alerts_of(shop)
    assert incident.state == "open" and incident.kind == "failure_streak" and incident.failures_in_row == 3
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
    assert "failed 3 times in a row" in mail.outbox[0].subject and "Main shop" in mail.outbox[0].subject
    assert "HTTP 500 from upstream" in mail.outbox[0].body
    for _ in range(3):  # more failures: the same incident, nothing more sent
        finish(shop, "orders", ok=False)
    services.evaluate()
    assert len(alerts_of(shop)) == 1 and len(mail.outbox) == 1
    fake_clock.advance(600)
    finish(shop, "orders", ok=True)
    [incident] = alerts_of(shop)
    assert incident.state == "closed" and incident.closed_at == fake_clock.now()
    assert len(mail.outbox) == 2 and mail.outbox[1].subject.startswith("[SyncHub] Recovered: Main shop")
    finish(shop, "orders", ok=True)
    services.evaluate()
    assert len(mail.outbox) == 2  # one recovery
    statuses = list(Notification.objects.values_list("event", "channel", "status", "recipients"))
    assert statuses == [("opened", "email", "sent", 1), ("recovered", "email", "sent", 1)]


def test_a_new_streak_after_recovery_is_a_new_incident(shop, fake_clock):
    for ok in (False, False, False, True, False, False, False):
        finish(shop, "products", ok=ok)
    assert [(i.state, i.kind) for i in alerts_of(shop)] == [("closed", "failure_streak"), ("open", "failure_streak")]
    assert len(mail.outbox) == 3  # alert, recovery, alert


def test_the_schedule_finds_a_streak_the_signal_missed_once(shop, fake_clock):
    """A streak moved while alerting was off (or a receiver crashed) is opened by the next evaluation, and
    evaluating again, or the run-end path racing it, opens nothing more."""
    from django.test import override_settings

    with override_settings(ALERTS_ENABLED=False):
        for _ in range(3):
            finish(shop, "customers", ok=False)
    assert alerts_of(shop) == []
    result = services.evaluate()
    assert result["opened"] >= 1
    streaks = [i for i in alerts_of(shop) if i.kind == "failure_streak"]
    assert len(streaks) == 1 and streaks[0].resource == "customers"
    sent = len(mail.outbox)
    services.evaluate()
    services.run_finished(shop, "customers", succeeded=False)
    assert len([i for i in alerts_of(shop) if i.kind == "failure_streak"]) == 1 and len(mail.outbox) == sent


def test_staleness_opens_once_and_recovers(shop, fake_clock):
    for resource in ("customers", "orders", "products", "coupons"):
        finish(shop, resource, ok=True)
    fake_clock.advance(44 * 60)
    assert services.evaluate()["opened"] == 0 and mail.outbox == []
    fake_clock.advance(2 * 60)  # 46 minutes since the last success: past 3 x 15 minutes
    services.evaluate()
    stale = alerts_of(shop)
    assert {i.resource for i in stale} == {"customers", "orders", "products", "coupons"}
    assert {i.kind for i in stale} == {"stale"} and len(mail.outbox) == 4
    assert "is stale: no successful sync for 46 minutes" in mail.outbox[0].subject
    assert "freshness 45 min" in mail.outbox[0].body
    fake_clock.advance(3600)
    services.evaluate()  # still stale: nothing more
    assert len(mail.outbox) == 4 and len(alerts_of(shop)) == 4
    finish(shop, "orders", ok=True)  # a success closes that resource's incident at once
    assert Incident.objects.get(connection=shop, resource="orders").state == "closed"
    assert len(mail.outbox) == 5 and "Recovered" in mail.outbox[4].subject
    for resource in ("customers", "products"):
        SyncStatus.objects.filter(connection=shop, resource=resource).update(last_success_at=fake_clock.now())
    services.evaluate()  # the schedule sees the others' successes
    assert sorted(Incident.objects.filter(state="open").values_list("resource", flat=True)) == ["coupons"]
    assert len(mail.outbox) == 7


def test_never_synced_is_stale_from_creation_and_policy_freshness_wins(
    org, make_connection, fake_clock, admin_email, monkeypatch
):
    import dataclasses

    from sync.registry import get_connector

    conn = make_connection(org, config={"sync_every_minutes": 15})
    woo = get_connector("woocommerce")
    monkeypatch.setattr(woo, "policy", dataclasses.replace(woo.policy, freshness=dt.timedelta(hours=2)))
    fake_clock.set(conn.created_at + dt.timedelta(minutes=90))
    services.evaluate()
    assert alerts_of(conn) == []
    fake_clock.set(conn.created_at + dt.timedelta(hours=2))
    services.evaluate()
    assert {i.detail for i in alerts_of(conn)} == {"never synced successfully"}


def test_unscheduled_connections_are_not_stale(org, make_connection, fake_clock, admin_email):
    conn = make_connection(org)  # no sync_every_minutes: not on a timer, no freshness target
    fake_clock.set(conn.created_at + dt.timedelta(days=30))
    services.evaluate()
    assert alerts_of(conn) == []


def test_rule_overrides_thresholds_and_can_disable(shop, fake_clock):
    rule = AlertRule.objects.create(organization=shop.organization, connection=shop, failure_streak=1)
    finish(shop, "orders", ok=False)
    assert [i.failures_in_row for i in alerts_of(shop)] == [1]
    rule.enabled = False
    rule.save()
    finish(shop, "products", ok=False)
    services.evaluate()
    assert [i.resource for i in alerts_of(shop)] == ["orders"]
    rule.enabled, rule.email_enabled, rule.freshness = True, False, dt.timedelta(hours=6)
    rule.save()
    finish(shop, "coupons", ok=False)
    assert Incident.objects.filter(resource="coupons", state="open").exists()
    assert len(mail.outbox) == 1  # email off for this connection: the incident is there, no mail


def test_webhook_gets_slack_json(shop, fake_clock, hook):
    rule = AlertRule(organization=shop.organization, connection=shop)
    rule.webhook_url = f"{hook.base_url}/services/T0/B0/{TOKEN}"
    rule.save()
    assert TOKEN not in rule.webhook_url_encrypted
    for _ in range(3):
        finish(shop, "orders", ok=False)
    [got] = hook.received
    assert set(got["json"]) == {"text"} and "failed 3 times in a row" in got["json"]["text"]
    assert got["headers"]["content-type"] == "application/json"
    finish(shop, "orders", ok=True)
    assert len(hook.received) == 2 and "Recovered" in hook.received[1]["json"]["text"]
    assert list(Notification.objects.filter(channel="webhook").values_list("status", flat=True)) == ["sent", "sent"]


def test_webhook_to_a_refused_address_is_recorded_and_never_raises(shop, fake_clock, settings, hook, monkeypatch):
    import socket

    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):  # a stub resolver: the host points into the private network
        if host != "hooks.example.com":
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    rule = AlertRule(organization=shop.organization, connection=shop)
    rule.webhook_url = f"https://hooks.example.com/services/T0/B0/{TOKEN}"
    rule.save()
    for _ in range(3):
        finish(shop, "orders", ok=False)
    note = Notification.objects.get(channel="webhook")
    assert note.status == "refused" and "refused" in note.error and TOKEN not in note.error
    assert Notification.objects.get(channel="email").status == "sent"  # the email still went
    # Loopback refused too once the setting no longer allows it; the task answers, it does not raise.
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    rule.webhook_url = f"{hook.base_url}/services/T0/B0/{TOKEN}"
    rule.save()
    incident = Incident.objects.get(state="open")
    Incident.objects.filter(pk=incident.pk).update(alert_sent_at=None)
    assert "webhook refused" in tasks.notify(incident.pk, "opened")
    assert hook.received == []


def test_webhook_redirect_is_not_followed(shop, fake_clock, hook):
    from connectors.sandbox.server import Response

    hook.answer = Response(302, b"", {"Location": f"{hook.base_url}/elsewhere"})
    rule = AlertRule(organization=shop.organization, connection=shop)
    rule.webhook_url = f"{hook.base_url}/services/T0/B0/{TOKEN}"
    rule.save()
    for _ in range(3):
        finish(shop, "orders", ok=False)
    note = Notification.objects.get(channel="webhook")
    assert note.status == "failed" and "redirect" in note.error
    assert [r["path"] for r in hook.received] == [f"/services/T0/B0/{TOKEN}"]  # /elsewhere never reached


def test_no_secret_in_alert_text(shop, fake_clock, hook):
    rule = AlertRule(organization=shop.organization, connection=shop)
    rule.webhook_url = f"{hook.base_url}/services/T0/B0/{TOKEN}"
    rule.save()
    for _ in range(3):
        finish(shop, "orders", ok=False, error=f"401 for {shop.base_url}?consumer_secret=cs_{TOKEN} (cs_{TOKEN})")
    texts = [m.subject + m.body for m in mail.outbox] + [r["json"]["text"] for r in hook.received]
    texts += [i.detail for i in Incident.objects.all()] + [n.error for n in Notification.objects.all()]
    assert texts and all(TOKEN not in t for t in texts)
    assert "[redacted]" in mail.outbox[0].body


def test_task_never_raises(shop, fake_clock, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "evaluate", boom)
    assert tasks.evaluate() is None
    monkeypatch.setattr(services, "incident_notify", boom)
    assert tasks.notify(1, "opened") == "crashed"


def test_email_failure_is_recorded(shop, fake_clock, monkeypatch):
    import alerts.notify as notify

    def broken(*a, **k):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(notify, "send_mail", broken)
    for _ in range(3):
        finish(shop, "orders", ok=False)
    note = Notification.objects.get()
    assert note.status == "failed" and note.error == "ConnectionRefusedError"


def test_evaluation_queries_do_not_grow_with_the_fleet(org, make_connection, fake_clock, admin_email):
    def fleet(n):
        conns = [make_connection(org, name=f"s{i}", config={"sync_every_minutes": 15}) for i in range(n)]
        for c in conns:
            for resource in ("customers", "orders", "products", "coupons"):
                finish(c, resource, ok=True)
            finish(c, "orders", ok=False)
        with CaptureQueriesContext(db_connection) as ctx:
            services.evaluate()
        return len(ctx.captured_queries)

    small = fleet(3)
    assert fleet(30) == small


def test_inactive_connection_closes_without_recovery(shop, fake_clock):
    for _ in range(3):
        finish(shop, "orders", ok=False)
    type(shop).objects.filter(pk=shop.pk).update(is_active=False)
    services.evaluate()
    assert Incident.objects.get().state == "closed" and len(mail.outbox) == 1


def test_the_schedule_is_registered_with_the_system_schedules(db):
    from django_q.models import Schedule

    runpolicy.schedules_register()
    sched = Schedule.objects.get(name="synchub:alerts")
    assert sched.func == "alerts.tasks.evaluate" and sched.minutes == 5 and sched.repeats == -1


def test_mdm_cron_freshness_is_three_intervals(org, make_connection, fake_clock, admin_email, settings):
    settings.INELIGIBLE_ITEMS_SYNC_CRON_SCHEDULE = "0 * * * *"
    conn = make_connection(org, kind="mdm")
    fake_clock.set(conn.created_at + dt.timedelta(hours=2, minutes=59))
    services.evaluate()
    assert alerts_of(conn) == []
    fake_clock.set(conn.created_at + dt.timedelta(hours=3))
    services.evaluate()
    assert [(i.resource, i.threshold) for i in alerts_of(conn)] == [("ineligible_items", "freshness 3 h 00 min")]
    settings.INELIGIBLE_ITEMS_SYNC_ENABLED = False  # schedule off on purpose: nothing is expected to run
    Incident.objects.all().delete()
    services.evaluate()
    assert alerts_of(conn) == []
