"""LGPD webhooks: store/redact, customers/redact, customers/data_request, each recorded as a PrivacyRequest,
and the data export staff download for a data request.

A replayed store/redact must not wipe a store that installed the app again after the original: the redact
is applied only when the store does not accept our token (the connection is disconnected, or the store
answers 401); a store that accepts it is installed, and the delivery is refused and recorded. Not by the
dedupe alone: the body is only ``{"store_id": N}``, the same bytes for a later, legitimate redact after the
next uninstall."""

from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q

from connectors.base import UpstreamError
from connectors.models import Connection
from core import clock
from sync import runpolicy
from sync.activity import activity_record
from sync.models import ActivityLevel, ScheduleState, SyncStatus
from sync.records import ERASED

from .errors import StoreCheckFailed, WebhookRejected
from .models import PrivacyRequest

Outcome = PrivacyRequest.Outcome


def _models():
    from commerce.models import Order, Product
    from customers.models import Customer

    return Product, Order, Customer


def store_installed(connection: Connection) -> bool:
    """Does the store still accept our token (the app is installed)? A disconnected connection holds none.
    Raises StoreCheckFailed when the store cannot tell us (network, 5xx): the webhook answers 503."""
    from .connector import connector

    if not connection.is_active or not connection.has_credentials or not connection.credentials.get("access_token"):
        return False
    client = connector.client(connection)
    client.max_tries = 1
    try:
        client.get_json("store", params={"fields": "id"})
        return True
    except UpstreamError as exc:
        if getattr(exc, "status", None) == 401:
            return False
        raise StoreCheckFailed(f"could not confirm the store's install state: {exc}") from None
    finally:
        client.close()


def privacy_store_redact(*, store_id: str, connection: Connection | None, installed: bool = False) -> str:
    """store/redact (48 h after uninstall): delete everything we hold for the store and its credentials,
    unless the store is installed again (``installed``: it accepts our token), which a replay would hit.
    The seals of customers erased on request stay (blank rows: their ids only)."""
    if connection is not None and installed:
        PrivacyRequest.objects.create(
            event="store/redact",
            store_id=store_id,
            connection=connection,
            outcome=Outcome.REFUSED,
            result={"reason": "the store is connected (it accepts our token): the app was installed again"},
        )
        activity_record(
            event="tiendanube.store_redact_refused",
            connection=connection,
            level=ActivityLevel.WARNING,
            message=f"store/redact for store {store_id} refused: the store is connected (installed again)",
        )
        return "refused: the store is connected"
    counts = {}
    if connection is not None:
        for model in _models():
            # Kept: the blank, sealed rows of customers (and their orders) erased on request, an id and nothing
            # else, so that a store that installs the app again does not get them back with its first sync.
            rows = model.objects.filter(connection=connection).exclude(sync_hash=ERASED)
            counts[model.__name__], _ = rows.delete()
        Connection.objects.filter(pk=connection.pk).update(is_active=False, needs_reauth=True, credentials_encrypted="")
        # The data is gone, so are the cursors: a store that installs again gets a full first sync.
        SyncStatus.objects.filter(connection=connection).update(cursor="")
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


def _ids(value) -> list[str]:
    return (
        [str(v) for v in value if isinstance(v, int | str) and not isinstance(v, bool)][:1000]
        if isinstance(value, list)
        else []
    )


def _customer_id(payload: dict) -> str:
    customer = payload.get("customer") or {}
    if not isinstance(customer, dict) or not customer.get("id"):
        raise WebhookRejected("privacy webhook has no customer id")
    return str(customer["id"])


# Cleared by customers/redact (billing and shipping too, to {}).
_PERSONAL_CUSTOMER_FIELDS = ("first_name", "last_name", "email", "phone", "username", "company")


def privacy_customer_redact(*, connection: Connection, payload: dict) -> str:
    """customers/redact: anonymise the customer and the personal data on their orders, and seal those rows
    (sync_hash ERASED): no later scan or webhook writes them again, even while the store still lists the
    customer (the engine's guarded upsert skips a sealed row). A customer or listed order we have not synced
    yet gets a sealed, blank row, so that a later first import cannot bring them in either. The price: a
    sealed order no longer follows its status upstream (we chose the customer's erasure over that)."""
    _, Order, Customer = _models()
    customer_id = _customer_id(payload)
    order_ids = _ids(payload.get("orders_to_redact"))
    now = clock.now()
    blank = {**dict.fromkeys(_PERSONAL_CUSTOMER_FIELDS, ""), "billing": {}, "shipping": {}}
    erased = {"extra": {"redacted": True}, "sync_hash": ERASED}
    n_customers = Customer.objects.filter(connection=connection, external_id=customer_id).update(
        **blank, **erased, deleted_at=now
    )
    n_orders = (
        Order.objects.filter(connection=connection)
        .filter(Q(customer_external_id=customer_id) | Q(external_id__in=order_ids))
        .update(email="", customer_external_id="", **erased)
    )
    # The same blank, sealed rows written as upserts: they create the rows we never synced, and a sync that
    # had inserted the customer (or a listed order) but not committed when the UPDATE above ran is blanked
    # and sealed as soon as it commits (the insert waits for it, then takes the conflict's update).
    owner = {"organization": connection.organization, "connection": connection, **erased}
    Customer.objects.bulk_create(
        [Customer(external_id=customer_id, deleted_at=now, **owner)],
        update_conflicts=True,
        unique_fields=["connection", "external_id"],
        update_fields=[*blank, *erased, "deleted_at"],
    )
    if order_ids:
        Order.objects.bulk_create(
            [Order(external_id=oid, deleted_at=now, **owner) for oid in order_ids],
            update_conflicts=True,
            unique_fields=["connection", "external_id"],
            update_fields=["email", "customer_external_id", *erased],
        )
    result = {"customers": n_customers, "orders": n_orders}
    PrivacyRequest.objects.create(
        event="customers/redact",
        store_id=connection.external_account_id,
        connection=connection,
        customer_external_id=customer_id,
        request={"orders_to_redact": order_ids},
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
    """customers/data_request: record the request (identifiers only) and what we hold, as counts. Staff
    download the export itself from the admin (privacy_data_export), built from what we hold then."""
    _, Order, Customer = _models()
    customer_id = _customer_id(payload)
    data_request = payload.get("data_request") if isinstance(payload.get("data_request"), dict) else {}
    request_id = str(data_request.get("id") or "")
    if (
        request_id
        and PrivacyRequest.objects.filter(
            event="customers/data_request", connection=connection, request__data_request_id=request_id
        ).exists()
    ):
        return "duplicate: data request already recorded"
    request = {
        "data_request_id": request_id,
        "orders_requested": _ids(payload.get("orders_requested")),
        "checkouts_requested": _ids(payload.get("checkouts_requested")),
        "drafts_orders_requested": _ids(payload.get("drafts_orders_requested")),
    }
    held = {
        # An erased customer's row holds nothing of them any more (a blank, sealed row): not counted.
        "customers": Customer.objects.filter(connection=connection, external_id=customer_id)
        .exclude(sync_hash=ERASED)
        .count(),
        "orders": _orders_for(connection, customer_id, request["orders_requested"]).count(),
    }
    PrivacyRequest.objects.create(
        event="customers/data_request",
        store_id=connection.external_account_id,
        connection=connection,
        customer_external_id=customer_id,
        outcome=Outcome.RECORDED,
        request=request,
        result={"held": held},
    )
    activity_record(
        event="tiendanube.customer_data_request",
        connection=connection,
        message=f"customers/data_request: request for customer {customer_id} recorded; export available in the admin",
        data=held,
    )
    return "data request recorded"


def _orders_for(connection: Connection, customer_id: str, order_ids: list[str]):
    _, Order, _ = _models()
    return Order.objects.filter(connection=connection).filter(
        Q(customer_external_id=customer_id) | Q(external_id__in=order_ids)
    )


def privacy_data_export(*, privacy_request: PrivacyRequest, actor=None) -> bytes:
    """The JSON export of everything we hold for a data request's customer: the customer rows and their
    orders (by customer id and the orders the request lists). Recorded in the activity (who, when)."""
    if privacy_request.event != "customers/data_request" or privacy_request.connection is None:
        raise WebhookRejected("only a customers/data_request of a known store has an export")
    _, Order, Customer = _models()
    connection = privacy_request.connection
    customer_id = privacy_request.customer_external_id
    hidden = {"connection", "organization"}
    customer_fields = [f.attname for f in Customer._meta.concrete_fields if f.name not in hidden]
    order_fields = [f.attname for f in Order._meta.concrete_fields if f.name not in hidden]
    export = {
        "store_id": privacy_request.store_id,
        "data_request": privacy_request.request,
        "requested_at": privacy_request.created_at,
        "exported_at": clock.now(),
        "customer": list(
            Customer.objects.filter(connection=connection, external_id=customer_id)
            .exclude(sync_hash=ERASED)
            .values(*customer_fields)
        ),
        "orders": list(
            _orders_for(connection, customer_id, privacy_request.request.get("orders_requested") or [])
            .order_by("external_id")
            .values(*order_fields)
        ),
    }
    activity_record(
        event="tiendanube.data_export_downloaded",
        connection=connection,
        actor=actor,
        message=f"data export of customer {customer_id} downloaded (privacy request {privacy_request.pk})",
        data={
            "privacy_request": privacy_request.pk,
            "customers": len(export["customer"]),
            "orders": len(export["orders"]),
        },
    )
    return json.dumps(export, cls=DjangoJSONEncoder, indent=2).encode()
