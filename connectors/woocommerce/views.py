"""Where WooCommerce calls us. Thin: the service decides, the view translates."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import services


@csrf_exempt  # authenticated by the HMAC signature, not a session
@require_POST
def webhook(request: HttpRequest, connection_id: int) -> JsonResponse:
    result = services.webhook_receive(connection_id=connection_id, body=request.body, headers=request.headers)
    return JsonResponse(result.body, status=result.status)
