"""Credentials at rest: loud on a missing or wrong key, rotatable with MultiFernet."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from core import crypto

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_round_trip(settings):
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    token = crypto.encrypt_json({"consumer_secret": "cs_123456"})
    assert "cs_123456" not in token
    assert crypto.decrypt_json(token) == {"consumer_secret": "cs_123456"}


def test_missing_key_is_loud(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS is not set"):
        crypto.encrypt_json({"a": "b"})
    with pytest.raises(ImproperlyConfigured):
        crypto.decrypt_json("gAAAAA-anything")


def test_invalid_key_is_loud(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured, match="invalid Fernet key"):
        crypto.encrypt_json({"a": "b"})


def test_wrong_key_is_a_credentials_error_never_an_empty_secret(settings, org, make_connection):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    conn = make_connection(org, credentials={"token": "tok-abcdef"})
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    conn.refresh_from_db()
    with pytest.raises(crypto.CredentialsError, match="cannot be decrypted"):
        conn.credentials  # noqa: B018
    assert conn.has_credentials


def test_rotation(settings, org, make_connection):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    conn = make_connection(org, credentials={"token": "tok-abcdef"})
    old_token = conn.credentials_encrypted
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]  # new key first, old still readable
    conn.refresh_from_db()
    assert conn.credentials == {"token": "tok-abcdef"}
    rotated = crypto.rotate(old_token)
    settings.FIELD_ENCRYPTION_KEYS = [NEW]  # old key retired
    assert crypto.decrypt_json(rotated) == {"token": "tok-abcdef"}
    with pytest.raises(crypto.CredentialsError):
        crypto.decrypt_json(old_token)


def test_empty_credentials_stay_empty(settings):
    assert crypto.decrypt_json("") == {}
