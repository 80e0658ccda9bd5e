"""Page-number pagination shared by every /api/ list (``?page=N&page_size=M``, max 200 a page).

Use ``pagination_class = StandardPagination`` on a ListAPIView; drf-spectacular documents the envelope
``{"count", "next", "previous", "results"}`` from it.
"""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
