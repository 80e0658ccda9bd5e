"""LGPD webhooks: store/redact, customers/redact, customers/data_request, each recorded as a PrivacyRequest."""

from __future__ import annotations

import json

from django.db.models import Q

from connectors.models import Connection
from core import clock
from sync import runpolicy
from sync.activity import activity_record
from sync.models import ActivityLevel, ScheduleState

from .errors import WebhookRejected
from .models import PrivacyRequest


def _models():
    from commerce.models import Order, Product
    from customers.models import Customer

    return Product, Order, Customer


def privacy_store_redact(*, store_id: str, connection: Connection | None) -> str:
    """store/redact (48 h after uninstall): delete everything we hold for the store."""
    counts = {}
    if connection is not None:
        for model in _models():
            counts[model.__name__], _ = model.objects.filter(connection=connection).delete()
        Connection.objects.filter(pk=connection.pk).update(is_active=False, needs_reauth=True, credentials_encrypted="")
        runpolicy.connection_pause(connection, state=ScheduleState.DISCONNECTED, reason="store data redacted")
    PrivacyRequest.objects.create(
        event="store/redact", store_id=store_id, connection=connection, result={"deleted": counts}
    )
    activity_record(
        event="tiendanube.store_redacted",
        connection=connection,
        level=ActivityLevel.WARNING,
        message=f"store/redact for store {store_id}: local data deleted",
        data={"deleted": counts},
    )
    return "store redacted"


def _customer_id(payload: dict) -> str:
    customer = payload.get("customer") or {}
    if not isinstance(customer, dict) or not customer.get("id"):
        raise WebhookRejected("privacy webhook has no customer id")
    return str(customer["id"])


def privacy_customer_redact(*, connection: Connection, payload: dict) -> str:
    """customers/redact: anonymise the customer and the personal data on their orders."""
    _, Order, Customer = _models()
    customer_id = _customer_id(payload)
    order_ids = [str(o) for o in (payload.get("orders_to_redact") or [])]
    now = clock.now()
    n_customers = Customer.objects.filter(connection=connection, external_id=customer_id).update(
        first_name="",
        last_name="",
        email="",
        phone="",
        username="",
        company="",
        billing={},
        shipping={},
        extra={"redacted": True},
        deleted_at=now,
    )
    n_orders = (
        Order.objects.filter(connection=connection)
        .filter(Q(customer_external_id=customer_id) | Q(external_id__in=order_ids))
        .update(email="", customer_external_id="", extra={"redacted": True})
    )
    result = {"customers": n_customers, "orders": n_orders}
    PrivacyRequest.objects.create(
        event="customers/redact",
        store_id=connection.external_account_id,
        connection=connection,
        customer_external_id=customer_id,
        result=result,
    )
    activity_record(
        event="tiendanube.customer_redacted",
        connection=connection,
        level=ActivityLevel.WARNING,
        message=f"customers/redact: customer {customer_id} anonymised",
        data=result,
    )
    return "customer redacted"


def privacy_data_request(*, connection: Connection, payload: dict) -> str:
    """customers/data_request: compile what we hold about the customer (kept on the PrivacyRequest row,
    for the merchant to be sent); the activity row only records counts."""
    _, Order, Customer = _models()
    customer_id = _customer_id(payload)
    customers = list(
        Customer.objects.filter(connection=connection, external_id=customer_id).values(
            "external_id", "first_name", "last_name", "email", "phone", "billing", "shipping", "extra"
        )
    )
    orders = list(
        Order.objects.filter(connection=connection, customer_external_id=customer_id).values(
            "external_id", "number", "status", "total", "currency", "email", "line_items"
        )
    )
    result = json.loads(
        json.dumps({"customer": customers, "orders": orders, "data_request": payload.get("data_request")}, default=str)
    )
    PrivacyRequest.objects.create(
        event="customers/data_request",
        store_id=connection.external_account_id,
        connection=connection,
        customer_external_id=customer_id,
        result=result,
    )
    activity_record(
        event="tiendanube.customer_data_request",
        connection=connection,
        message=f"customers/data_request: data of customer {customer_id} compiled",
        data={"customers": len(customers), "orders": len(orders)},
    )
    return "data request compiled"
