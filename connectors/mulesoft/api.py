"""Thin API views over the loyalty selectors/services. Staff only, organization-scoped."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from sync.api.exceptions import ApiError
from sync.api.openapi import BAD_INPUT, NOT_FOUND, THROTTLED
from sync.api.serializers import OrganizationParamSerializer
from sync.api.throttles import SyncTriggerThrottle
from sync.selectors import organization_list

from .selectors import loyalty_refresh_status, loyalty_refresh_wait_seconds
from .services import loyalty_refresh_now


def _organization(request):
    """The organization asked for (query string, else a POST body) among the caller's, or their first."""
    orgs = organization_list(user=request.user)
    source = request.query_params
    if "organization" not in source and request.method == "POST":
        source = request.data
    org_id = OrganizationParamSerializer.organization_id(source)
    if org_id:
        return get_object_or_404(orgs, pk=org_id)
    first = orgs.order_by("id").first()
    if first is None:
        raise Http404("no organization")
    return first


ORG_PARAM = OpenApiParameter("organization", int, description="organization id (default: your first)")


class LoyaltyStatusView(APIView):
    @extend_schema(parameters=[ORG_PARAM], responses={200: dict, **BAD_INPUT, **NOT_FOUND})
    def get(self, request):
        org = _organization(request)
        return Response({"organization": org.pk, **loyalty_refresh_status(org)})


class LoyaltyRefreshView(APIView):
    throttle_classes = [SyncTriggerThrottle]
    throttle_scope = "sync-trigger"

    @extend_schema(parameters=[ORG_PARAM], request=None, responses={202: dict, **BAD_INPUT, **NOT_FOUND, **THROTTLED})
    def post(self, request):
        org = _organization(request)
        result = loyalty_refresh_now(org, actor=request.user)
        if not result["enqueued"]:
            wait = loyalty_refresh_wait_seconds(org)
            raise ApiError(
                result["reason"],
                code="upstream_rate_limited",
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                details={"retry_after_seconds": wait},
                headers={"Retry-After": str(wait)},
            )
        return Response({"organization": org.pk, **result}, status=status.HTTP_202_ACCEPTED)
