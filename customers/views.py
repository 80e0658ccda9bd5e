"""GET /api/customers: staff, organization-scoped, paginated, searchable; refreshes loyalty tiers after."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import ListAPIView

from . import selectors
from .serializers import CustomerSerializer
from .services import loyalty_refresh_after_response


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class CustomerListView(ListAPIView):
    serializer_class = CustomerSerializer

    def get_queryset(self):
        params = self.request.query_params
        return selectors.customer_list(
            user=self.request.user,
            search=params.get("search", ""),
            organization_id=_int_or_none(params.get("organization")),
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="matches first name, last name, full name or email"),
            OpenApiParameter("organization", int, description="only this organization's customers"),
        ],
        description="Lists customers. After the response is sent, a loyalty-tier refresh from MuleSoft is "
        "enqueued (throttled per organization).",
    )
    def get(self, request, *args, **kwargs):
        response = self.list(request, *args, **kwargs)
        org_ids = selectors.refresh_organization_ids(
            user=request.user, organization_id=_int_or_none(request.query_params.get("organization"))
        )
        loyalty_refresh_after_response(org_ids)
        return response
