"""FIELD_ENCRYPTION_KEYS rotation: add a key, re-encrypt, remove the old key, everything still reads."""

import io

from cryptography.fernet import Fernet
from django.core.management import call_command

from connectors.models import Connection

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


def test_rotation_re_encrypts_every_secret_with_the_newest_key(settings, org, make_connection):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    conn = make_connection(org, credentials={"consumer_secret": "cs_rotate_me"})
    plain = make_connection(org, name="no secrets")  # an empty credentials blob is encrypted too
    before = Connection.objects.get(pk=conn.pk).credentials_encrypted

    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]  # step 1: the new key first, the old one still readable
    out = io.StringIO()
    call_command("rotate_field_keys", stdout=out)
    assert "connectors.Connection.credentials_encrypted: 2 re-encrypted" in out.getvalue()
    assert Connection.objects.get(pk=conn.pk).credentials_encrypted != before

    settings.FIELD_ENCRYPTION_KEYS = [NEW]  # step 3: the old key removed
    assert Connection.objects.get(pk=conn.pk).credentials == {"consumer_secret": "cs_rotate_me"}
    assert Connection.objects.get(pk=plain.pk).credentials == {}
    Fernet(NEW.encode()).decrypt(Connection.objects.get(pk=conn.pk).credentials_encrypted.encode())
