"""GET /api/customers: staff, organization-scoped, paginated, searchable; refreshes loyalty tiers after."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import ListAPIView

from sync.api.serializers import OrganizationParamSerializer

from . import selectors
from .serializers import CustomerSerializer
from .services import loyalty_refresh_after_response


class CustomerListView(ListAPIView):
    serializer_class = CustomerSerializer

    def get_queryset(self):
        params = self.request.query_params
        return selectors.customer_list(
            user=self.request.user,
            search=params.get("search", ""),
            organization_id=OrganizationParamSerializer.organization_id(params, user=self.request.user),
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
            user=request.user,
            organization_id=OrganizationParamSerializer.organization_id(request.query_params, user=request.user),
        )
        loyalty_refresh_after_response(org_ids)
        return response
