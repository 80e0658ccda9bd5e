"""OAuth connect: a staff user starts it here; Lightspeed sends the browser back to the callback."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET

from sync.api.converters import parse_id
from sync.selectors import organization_list

from . import services


def _problem(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(request, "lightspeed/oauth_result.html", {"ok": False, "message": message}, status=status)


@require_GET
@staff_member_required
def oauth_start(request: HttpRequest) -> HttpResponse:
    """?organization=<id> (needed when the user belongs to several) &name=<connection name>."""
    orgs = organization_list(user=request.user)
    wanted = request.GET.get("organization")
    if wanted:
        org_id = parse_id(wanted)
        org = orgs.filter(pk=org_id).first() if org_id else None
    else:
        org = orgs.first() if orgs.count() == 1 else None
    if org is None:
        return _problem(request, "Choose one of your organizations (?organization=<id>) to connect Lightspeed to.")
    if not request.session.session_key:
        request.session.save()
    try:
        url = services.oauth_start(
            user=request.user,
            organization=org,
            session_key=request.session.session_key,
            connection_name=request.GET.get("name", ""),
        )
    except services.OAuthFlowError as exc:
        return _problem(request, str(exc))
    return HttpResponseRedirect(url)


@require_GET
@staff_member_required
def oauth_callback(request: HttpRequest) -> HttpResponse:
    try:
        connection = services.oauth_complete(
            user=request.user,
            state=request.GET.get("state"),
            code=request.GET.get("code"),
            domain_prefix=request.GET.get("domain_prefix"),
            error=request.GET.get("error", ""),
            session_key=request.session.session_key,
        )
    except services.OAuthFlowError as exc:
        return _problem(request, str(exc), exc.http_status)
    return render(
        request,
        "lightspeed/oauth_result.html",
        {
            "ok": True,
            "message": f"Connected the Lightspeed retailer {connection.external_account_id}.",
            "connection": connection,
        },
    )
