"""Customer-side writes. The loyalty refresh itself lives with the MuleSoft connector."""

from __future__ import annotations

from collections.abc import Iterable

from django.http import HttpResponseBase


def loyalty_refresh_after_response(response: HttpResponseBase, organization_ids: Iterable[int]) -> None:
    """Enqueue the loyalty-tier refresh once the response has been sent.

    Django calls a response's resource closers from ``response.close()``, which the WSGI server invokes
    after the last byte went out (the test client emulates this). So the request never waits for the
    throttle check or the enqueue INSERT, let alone for MuleSoft, which only the worker talks to."""
    from connectors.mulesoft.services import loyalty_refresh_request_safe

    ids = list(organization_ids)
    if ids:
        response._resource_closers.append(lambda: loyalty_refresh_request_safe(ids, origin="customer_list"))
