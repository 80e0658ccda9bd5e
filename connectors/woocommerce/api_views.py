"""Thin DRF views over the WooCommerce selectors (staff only, organization-scoped: others get 404)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors


class WebhookSetupView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="What to enter in WooCommerce's webhook form for this connection (never the secret itself)",
        responses=inline_serializer(
            "WooWebhookSetup",
            {
                "connection": serializers.IntegerField(),
                "delivery_url": serializers.URLField(),
                "secret_configured": serializers.BooleanField(),
                "api_version": serializers.CharField(),
                "topics": serializers.ListField(child=serializers.CharField()),
            },
        ),
    )
    def get(self, request, connection_id: int):
        data = selectors.webhook_setup(user=request.user, connection_id=connection_id)
        if data is None:
            raise Http404
        return Response(data)
