"""A secret never lands in activity rows, queue/status/connection errors, line errors, task rows or logs."""

from __future__ import annotations

import io
import logging

from django.conf import settings as django_settings
from django_q.models import Task

from core.redaction import MASK, RedactingFilter, redact, redact_data
from sync import services
from sync.models import SyncActivity, SyncQueue, SyncQueueLine, SyncStatus

SECRET = "s3cr3t-token-value"  # the fake_conn fixture's credential


def everything_written(conn) -> str:
    parts: list[str] = []
    for row in SyncActivity.objects.all():
        parts += [row.message, str(row.data)]
    for q in SyncQueue.objects.all():
        parts += [q.last_error, q.fetch_error, str(q.params)]
    parts += list(SyncQueueLine.objects.values_list("last_error", flat=True))
    parts += list(SyncStatus.objects.values_list("last_error", flat=True))
    conn.refresh_from_db()
    parts.append(conn.last_error)
    for task in Task.objects.all():
        parts += [str(task.args), str(task.kwargs), str(task.result)]
    return "\n".join(parts)


def test_a_secret_in_errors_never_lands_anywhere(fake_conn, fake_kind):
    fake_conn.credentials  # noqa: B018  (decrypting registers the values as secrets, as a client does)
    log_buffer = io.StringIO()
    handler = logging.StreamHandler(log_buffer)
    handler.addFilter(RedactingFilter())
    logging.getLogger().addHandler(handler)
    try:
        fake_kind.__init__(12)
        # A crash whose message echoes the secret (not in key=value form: only the registry catches it).
        fake_kind.fail_pages[1] = RuntimeError(f"upstream said: bad bearer {SECRET} for GET /customers")
        fake_kind.records[2]["email"] = ""
        result = services.sync_start(connection=fake_conn, resource="customers")
        # An auth failure echoing the URL with its query-string secret.
        fake_kind.fail_pages = {0: RuntimeError(f"GET https://shop.example.com/x?consumer_secret={SECRET}&page=2")}
        second = services.sync_start(connection=fake_conn, resource="customers", full_scan=True)
    finally:
        logging.getLogger().removeHandler(handler)
    written = everything_written(fake_conn)
    assert "bad bearer" in written and MASK in written  # the errors were recorded...
    assert SECRET not in written  # ...without the secret
    assert SECRET not in log_buffer.getvalue() and "bad bearer" in log_buffer.getvalue()
    task_args = set(Task.objects.filter(func="sync.tasks.run_queue").values_list("args", flat=True))
    assert task_args == {(result.queue.pk,), (second.queue.pk,)}  # ids only


def test_the_console_handler_is_filtered():
    assert django_settings.LOGGING["handlers"]["console"]["filters"] == ["redact"]


def test_redact_shapes():
    assert (
        redact("https://x/y?consumer_key=ck_1&consumer_secret=cs_2")
        == f"https://x/y?consumer_key={MASK}&consumer_secret={MASK}"
    )
    assert redact("Authorization: Bearer abc.def") == f"Authorization: Bearer {MASK}"
    assert redact('{"access_token": "tok"}') == f'{{"access_token": "{MASK}"}}'
    assert redact_data({"client_secret": "x", "nested": [{"password": "p"}], "ok": "fine"}) == {
        "client_secret": MASK,
        "nested": [{"password": MASK}],
        "ok": "fine",
    }


def test_credentials_in_a_url_userinfo_are_masked():
    from core.redaction import MASK, redact

    assert redact("GET https://bob:s3cr3t-pw@mule.example/api/tiers failed") == (
        f"GET https://{MASK}@mule.example/api/tiers failed"
    )
    assert redact("https://mule.example/api/tiers?page=2") == "https://mule.example/api/tiers?page=2"
