"""Where MuleSoft calls us: the signed push of tier changes (push.py). The view only translates."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import push


@csrf_exempt  # signed by MuleSoft (HMAC), not a browser form
@require_POST
def push_view(request, connection_id: int):
    result = push.push_receive(connection_id=connection_id, body=request.body, headers=request.headers)
    return JsonResponse(result.body, status=result.status)
