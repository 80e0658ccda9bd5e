"""Admin glue for the MuleSoft loyalty-tier refresh, shown on the LoyaltyTier changelist (customers/admin.py).

Nothing is registered here: the panel and the "Refresh now" view are plain functions plugged into
``customers.admin.LoyaltyTierAdmin`` at the end of this module (the domain app imports no connector; the
connector extends the domain's admin). Reads go through ``selectors.loyalty_refresh_status``, the write
through ``services.loyalty_refresh_now``; both are organization-scoped by ``sync.selectors.organization_list``
(superusers: every organization; staff: the organizations they are members of).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import reverse

from core.redaction import redact
from sync.models import Organization
from sync.selectors import organization_list

from .models import Outcome
from .selectors import loyalty_refresh_status
from .services import loyalty_refresh_now

# A superuser of a large installation should not pay ~4 queries for hundreds of organizations per page.
PANEL_LIMIT = 50
CHANGELIST = "admin:customers_loyaltytier_changelist"


@dataclass(frozen=True)
class LoyaltyPanelRow:
    organization: Organization
    status: dict
    refresh_url: str

    @property
    def outcome_label(self) -> str:
        outcome = self.status["last_outcome"]
        return Outcome(outcome).label if outcome in Outcome.values else "Never refreshed"

    @property
    def badge(self) -> str:
        """CSS class of the outcome badge (admin/sync/_assets.html)."""
        outcome = self.status["last_outcome"]
        return {Outcome.SUCCESS: "success", Outcome.SKIPPED: "skipped"}.get(
            outcome, "failed" if outcome in Outcome.values else "idle"
        )


def loyalty_panel(request: HttpRequest) -> list[LoyaltyPanelRow]:
    """One row per organization the user may operate: last refresh, outcome, and where to POST a refresh."""
    orgs = organization_list(user=request.user).order_by("name", "id")[:PANEL_LIMIT]
    return [
        LoyaltyPanelRow(org, loyalty_refresh_status(org), reverse("admin:customers_loyaltytier_refresh", args=[org.pk]))
        for org in orgs
    ]


def loyalty_refresh_view(request: HttpRequest, organization_id: int) -> HttpResponse:
    """POST only (CSRF-checked by the admin site): the "Refresh now" button. An organization outside the
    user's scope is a 404, exactly like an id that does not exist."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    org = organization_list(user=request.user).filter(pk=organization_id).first()
    if org is None:
        raise Http404("no such organization")
    result = loyalty_refresh_now(org, actor=request.user)
    if result["enqueued"]:
        messages.success(request, f"{org.name}: loyalty-tier refresh requested.")
    else:
        messages.warning(request, f"{org.name}: {redact(result.get('reason', 'refresh not possible now'))}")
    return redirect(CHANGELIST)


def _plug_into_customers_admin() -> None:
    from customers.admin import LoyaltyTierAdmin

    LoyaltyTierAdmin.refresh_panel = staticmethod(loyalty_panel)
    LoyaltyTierAdmin.refresh_view = staticmethod(loyalty_refresh_view)


_plug_into_customers_admin()
