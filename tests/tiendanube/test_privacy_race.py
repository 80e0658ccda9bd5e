"""customers/redact racing a sync that is writing the same customer (PostgreSQL: row locks)."""

import threading
import time

import pytest
from django.db import connection as db_connection
from django.db import transaction

from sync.records import ERASED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_redact_while_a_sync_inserts_the_customer_blanks_and_seals_it_once_the_sync_commits(org, make_connection):
    """The redact's UPDATE cannot see a row a sync inserted but has not committed; its sealed blank row,
    written ON CONFLICT, waits for that commit and then blanks and seals the row. (With a plain insert that
    ignored the conflict, the customer's data stayed, unsealed, and a later scan kept it.)"""
    from connectors.tiendanube.privacy import privacy_customer_redact
    from customers.models import Customer

    conn = make_connection(org, kind="tiendanube", external_account_id="1001")
    inserted, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def sync_inserts_the_customer():
        try:
            with transaction.atomic():
                Customer.objects.create(
                    organization=org, connection=conn, external_id="7", first_name="Ana", email="ana@example.com"
                )
                inserted.set()
                release.wait(10)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            db_connection.close()

    def redact():
        try:
            privacy_customer_redact(connection=conn, payload={"customer": {"id": 7}, "orders_to_redact": []})
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    writer = threading.Thread(target=sync_inserts_the_customer)
    writer.start()
    assert inserted.wait(10)
    redactor = threading.Thread(target=redact)
    redactor.start()
    time.sleep(0.5)  # the redact's UPDATE has run (it saw no row) and its upsert waits on the writer's row
    assert redactor.is_alive(), "the redact did not wait for the uncommitted row"
    release.set()
    writer.join(10)
    redactor.join(10)
    assert not errors, errors
    row = Customer.objects.get(connection=conn, external_id="7")
    assert (row.first_name, row.email, row.sync_hash, row.deleted_at is not None) == ("", "", ERASED, True)
