"""Reads of customers and loyalty tiers, always scoped to the caller's organizations."""

from __future__ import annotations

from django.db.models import Q, QuerySet, TextField, Value
from django.db.models.functions import Concat

from sync.models import Organization
from sync.selectors import organization_ids_for, scope

from .models import Customer, LoyaltyTier


def customer_list(*, user, search: str = "", organization_id: int | None = None) -> QuerySet[Customer]:
    qs = scope(Customer.objects.filter(deleted_at__isnull=True), user)
    if organization_id:
        qs = qs.filter(organization_id=organization_id)
    search = (search or "").strip()
    if search:
        qs = qs.annotate(_full_name=Concat("first_name", Value(" "), "last_name", output_field=TextField())).filter(
            Q(first_name__icontains=search)
            | Q(last_name__icontains=search)
            | Q(email__icontains=search)
            | Q(_full_name__icontains=search)
        )
    return qs.order_by("last_name", "first_name", "id")


def loyalty_tier_list(*, user, organization_id: int | None = None) -> QuerySet[LoyaltyTier]:
    qs = scope(LoyaltyTier.objects.filter(deleted_at__isnull=True), user)
    return qs.filter(organization_id=organization_id) if organization_id else qs


def refresh_organization_ids(*, user, organization_id: int | None = None) -> list[int]:
    """Whose loyalty tiers a customer-list request should refresh: the caller's organizations (or the one
    asked for); a superuser without a filter refreshes every organization (each throttled)."""
    ids = organization_ids_for(user)
    if ids is None:
        qs = Organization.objects.all()
        return list((qs.filter(pk=organization_id) if organization_id else qs).values_list("id", flat=True))
    return [i for i in ids if not organization_id or i == organization_id]
