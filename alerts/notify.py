"""Sending one incident's alert or recovery: email to the organization's admins (Django's mail) and, when the
connection's rule has one, a Slack-compatible webhook (``{"text": ...}``) through the outbound guard. Every
attempt becomes a Notification row; nothing raises, and no secret reaches the text, the row or a log."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import send_mail

from core import clock
from core.http import BlockedDestination, check_url, guarded_session
from core.redaction import redact, register_secret

from . import selectors
from .models import Incident, IncidentKind, Notification

log = logging.getLogger("synchub.alerts")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first ``kind`` in an exception's chain (requests wraps the guard's refusal in a ConnectionError)."""
    seen, stack = set(), [exc]
    while stack:
        cur = stack.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, kind):
            return cur
        stack.extend([cur.__cause__, cur.__context__, getattr(cur, "reason", None)])
        stack.extend(a for a in getattr(cur, "args", ()) if isinstance(a, BaseException))
    return None


def _age(delta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    return f"{max(seconds // 60, 0)} minutes"


def render(incident: Incident, event: str) -> tuple[str, str]:
    """(subject, text). Names and numbers only: never the connection's URL or credentials; the error text was
    redacted when it was stored and is redacted again here."""
    conn = incident.connection
    where = f"{conn.name} ({conn.kind} #{conn.pk}), {incident.resource}"
    link = f"{settings.ALERTS_SITE_URL.rstrip('/')}/admin/alerts/incident/{incident.pk}/change/"
    if event == Notification.Event.RECOVERED:
        subject = f"[SyncHub] Recovered: {where}"
        cause = "failure streak" if incident.kind == IncidentKind.FAILURE_STREAK else "staleness"
        body = (
            f"The {cause} of {where} cleared at {incident.closed_at:%Y-%m-%d %H:%M} UTC "
            f"(open for {_age(incident.closed_at - incident.opened_at)})."
        )
    elif incident.kind == IncidentKind.FAILURE_STREAK:
        subject = f"[SyncHub] {where} failed {incident.failures_in_row} times in a row"
        body = (
            f"{where} has failed {incident.failures_in_row} consecutive runs (alert threshold "
            f"{incident.threshold}).\nLast error: {incident.detail or 'none recorded'}"
        )
    else:
        since = (
            f"last success {incident.last_success_at:%Y-%m-%d %H:%M} UTC"
            if incident.last_success_at
            else "never synced successfully"
        )
        age = _age(incident.opened_at - (incident.last_success_at or conn.created_at))
        subject = f"[SyncHub] {where} is stale: no successful sync for {age}"
        body = f"{where} has no successful sync within its freshness target ({incident.threshold}); {since}."
    body += f"\nOrganization: {incident.organization.name}\nIncident #{incident.pk}: {link}\n"
    return redact(subject), redact(body)


def _record(incident, event, channel, status, *, recipients=0, error="") -> Notification:
    return Notification.objects.create(
        incident=incident,
        event=event,
        channel=channel,
        status=status,
        recipients=recipients,
        error=redact(error)[:2000],
        created_at=clock.now(),
    )


def send_email(incident: Incident, event: str, subject: str, text: str) -> Notification:
    to = selectors.recipients(incident.organization_id)
    if not to:
        log.warning("alert for incident %s: the organization has no admin with an email", incident.pk)
        return _record(incident, event, "email", "skipped", error="no admin with an email in the organization")
    try:
        send_mail(subject, text, settings.ALERTS_FROM_EMAIL or settings.DEFAULT_FROM_EMAIL, to)
    except Exception as exc:  # a broken mail server must not turn an alert into a crash
        log.error("alert email for incident %s failed: %s", incident.pk, exc.__class__.__name__)
        return _record(incident, event, "email", "failed", recipients=len(to), error=exc.__class__.__name__)
    return _record(incident, event, "email", "sent", recipients=len(to))


def _register_url(url: str) -> None:
    """A webhook URL carries its token in the path or query: mask every part of it wherever it may echo."""
    register_secret(url)
    parts = urlsplit(url)
    register_secret(parts.path)
    register_secret(parts.query)


def webhook_post(url: str, text: str) -> tuple[str, str]:
    """POST ``{"text": text}``; (status, error) with status sent | failed | refused. Never raises, never
    follows a redirect, and reaches only what the outbound guard allows."""
    _register_url(url)
    try:
        check_url(url)
        session = guarded_session(pool_maxsize=1)
        try:
            response = session.post(
                url, json={"text": text}, timeout=settings.ALERTS_WEBHOOK_TIMEOUT, allow_redirects=False
            )
        finally:
            session.close()
    except BlockedDestination as exc:
        return "refused", f"outbound request refused: {exc}"
    except requests.exceptions.TooManyRedirects:
        return "failed", "the webhook answered with a redirect; redirects are not followed"
    except requests.RequestException as exc:
        blocked = _caused_by(exc, BlockedDestination)
        if blocked is not None:
            return "refused", f"outbound request refused: {blocked}"
        return "failed", f"network error: {exc.__class__.__name__}"
    except Exception as exc:  # never raise out of the task
        return "failed", exc.__class__.__name__
    if 300 <= response.status_code < 400:
        return "failed", f"HTTP {response.status_code}: redirects are not followed"
    if not 200 <= response.status_code < 300:
        return "failed", f"HTTP {response.status_code}"
    return "sent", ""


def send_webhook(incident: Incident, event: str, url: str, text: str) -> Notification:
    status, error = webhook_post(url, text)
    if status != "sent":
        log.warning("alert webhook for incident %s %s: %s", incident.pk, status, redact(error))
    return _record(incident, event, "webhook", status, recipients=1, error=error)
