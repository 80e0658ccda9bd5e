"""Page-number pagination shared by every /api/ list (``?page=N&page_size=M``, max 200 a page); the project
default (``REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"]``).

Use ``pagination_class = StandardPagination`` on a ListAPIView; drf-spectacular documents the envelope
``{"count", "next", "previous", "results"}`` from it.
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        # DRF silently falls back to the default on "abc" or "0"; a value that is not a positive integer is a
        # 400 instead, as the schema says (sync.api.openapi bounds it). Above the maximum is clamped.
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw != "" and not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise ValidationError({self.page_size_query_param: ["A positive integer is required."]})
        return super().get_page_size(request)
