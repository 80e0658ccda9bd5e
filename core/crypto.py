"""Credentials at rest: MultiFernet with keys from FIELD_ENCRYPTION_KEYS (newest first, rotatable).

A missing or wrong key raises loudly; we never fall back to an empty secret.
"""

from __future__ import annotations

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class CredentialsError(Exception):
    """Stored credentials cannot be decrypted with the configured keys."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is not set: connection credentials cannot be encrypted or read. "
            "Generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    try:
        return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS holds an invalid Fernet key: {exc.__class__.__name__}"
        ) from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt_json(data: dict) -> str:
    return fernet().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise CredentialsError(
            "stored credentials cannot be decrypted with FIELD_ENCRYPTION_KEYS (wrong or rotated-out key)"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt with the newest key (MultiFernet.rotate)."""
    return fernet().rotate(token.encode()).decode() if token else token
