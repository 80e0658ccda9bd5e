"""Thin API views over the loyalty selectors/services. Staff only, organization-scoped."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from sync.selectors import organization_list

from .selectors import loyalty_refresh_status
from .services import loyalty_refresh_now


def _organization(request):
    orgs = organization_list(user=request.user)
    org_id = request.query_params.get("organization")
    if not org_id and request.method == "POST":
        org_id = request.data.get("organization")
    if org_id:
        return get_object_or_404(orgs, pk=org_id)
    first = orgs.order_by("id").first()
    if first is None:
        from django.http import Http404

        raise Http404("no organization")
    return first


ORG_PARAM = OpenApiParameter("organization", int, description="organization id (default: your first)")


class LoyaltyStatusView(APIView):
    @extend_schema(parameters=[ORG_PARAM], responses={200: dict})
    def get(self, request):
        org = _organization(request)
        return Response({"organization": org.pk, **loyalty_refresh_status(org)})


class LoyaltyRefreshView(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "sync-trigger"

    @extend_schema(parameters=[ORG_PARAM], request=None, responses={202: dict, 429: dict})
    def post(self, request):
        org = _organization(request)
        result = loyalty_refresh_now(org, actor=request.user)
        code = status.HTTP_202_ACCEPTED if result["enqueued"] else status.HTTP_429_TOO_MANY_REQUESTS
        return Response({"organization": org.pk, **result}, status=code)
