"""Where Tiendanube (and the staff user's browser) calls us: connect start, OAuth callback, webhooks."""

from __future__ import annotations

import logging

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from core.errors import error_body
from sync.api.converters import parse_id
from sync.selectors import organization_list

from . import oauth, webhooks
from .errors import TiendanubeError, WebhookRejected
from .models import PendingInstall

log = logging.getLogger(__name__)


@staff_member_required
@require_GET
def connect_start(request: HttpRequest) -> HttpResponse:
    """Start OAuth for ?organization=<id> (one of the caller's organizations)."""
    orgs = organization_list(user=request.user)
    org_id = request.GET.get("organization")
    if not org_id and orgs.count() == 1:
        org = orgs.get()
    else:
        org = get_object_or_404(orgs, pk=parse_id(org_id)) if parse_id(org_id) else None
    if org is None:
        return JsonResponse({"error": "organization_required", "detail": "pass ?organization=<id>"}, status=400)
    if not request.session.session_key:
        request.session.save()
    try:
        url = oauth.oauth_start(user=request.user, organization=org, session_key=request.session.session_key)
    except TiendanubeError as exc:
        return JsonResponse({"error": exc.code, "detail": str(exc)}, status=exc.http_status)
    return HttpResponseRedirect(url)


@require_GET
def oauth_callback(request: HttpRequest) -> HttpResponse:
    try:
        result = oauth.oauth_complete(
            session_key=request.session.session_key,
            state=request.GET.get("state"),
            code=request.GET.get("code"),
            actor=request.user if request.user.is_authenticated else None,
        )
    except TiendanubeError as exc:
        return JsonResponse({"error": exc.code, "detail": str(exc)}, status=exc.http_status)
    if isinstance(result, PendingInstall):
        return JsonResponse(
            {
                "status": "pending",
                "store_id": result.store_id,
                "detail": "installed; a staff member must claim this store for an organization",
            },
            status=202,
        )
    if request.user.is_authenticated and request.user.is_staff and request.GET.get("format") != "json":
        return HttpResponseRedirect(reverse("admin:tiendanube_storeschedule_changelist"))
    return JsonResponse({"status": "connected", "store_id": result.external_account_id, "connection": result.pk})


def _webhook(request: HttpRequest, event: str | None) -> HttpResponse:
    """Bad signature 401, malformed 400, handled 200 (duplicates included). A verified delivery we failed
    to act on (the database down, the store unreachable when its install state must be confirmed, a bug)
    is a 503: nothing was recorded, and Tiendanube redelivers for up to 48 h."""
    try:
        done = webhooks.webhook_handle(
            body=request.body, signature=request.headers.get("X-Linkedstore-HMAC-SHA256"), event=event
        )
    except WebhookRejected as exc:
        return JsonResponse(error_body(exc.code, str(exc)), status=exc.http_status)
    except Exception as exc:
        if not isinstance(exc, TiendanubeError):
            log.exception("tiendanube webhook handling failed")
        response = JsonResponse(
            error_body("webhook_not_processed", "the delivery could not be processed; please redeliver"), status=503
        )
        response["Retry-After"] = "60"
        return response
    return JsonResponse({"status": "ok", "detail": done})


@csrf_exempt
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    """Store events (``{"store_id", "event", "id"}``); also accepts LGPD bodies that carry an ``event``."""
    return _webhook(request, None)


# The LGPD events: each configured to its own URL in the partner portal; their bodies have no "event" key.
@csrf_exempt
@require_POST
def webhook_store_redact(request: HttpRequest) -> HttpResponse:
    return _webhook(request, "store/redact")


@csrf_exempt
@require_POST
def webhook_customers_redact(request: HttpRequest) -> HttpResponse:
    return _webhook(request, "customers/redact")


@csrf_exempt
@require_POST
def webhook_customers_data_request(request: HttpRequest) -> HttpResponse:
    return _webhook(request, "customers/data_request")
