"""S3 access for the export and the read path: one boto3 client factory, transient errors retried with
``backoff`` (botocore's own retries are off so there is one retry policy), everything else raised as
``S3Error`` with a short, secret-free message."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import backoff
import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from django.conf import settings

from core.http import BlockedDestination, resolve_allowed

from . import conf

log = logging.getLogger("synchub.mdm")

_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeTooSkewed",
    "ConditionalRequestConflict",
}


class S3Error(Exception):
    def __init__(self, message: str, *, error_type: str, transient: bool = False) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.transient = transient


class S3Transient(S3Error):
    pass


@dataclass(frozen=True)
class Target:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def default_target() -> Target:
    return Target(conf.MDM_S3_BUCKET, conf.MDM_S3_KEY)


def client_settings() -> tuple:
    """Everything a client depends on; the cache key of ``s3_client`` (conf changes give a new client)."""
    return (
        conf.MDM_S3_ENDPOINT_URL or "",
        conf.MDM_S3_REGION,
        conf.MDM_S3_ACCESS_KEY_ID,
        conf.MDM_S3_SECRET_ACCESS_KEY,
        tuple(conf.MDM_S3_TIMEOUT),
    )


def s3_client():
    """A boto3 S3 client for the configured endpoint, reused (building one costs ~1 s of model loading;
    boto3 clients are thread-safe). Building it can fail too (no region, an IMDS lookup that errors): that
    is an S3Error like any other, never a raw botocore exception in a request or a task."""
    key = client_settings()
    check_endpoint(key[0])
    try:
        return _cached_client(key)
    except Exception as exc:
        raise _translate(exc) from None


def check_endpoint(endpoint: str) -> None:
    """An endpoint override is held to the outbound rules (loopback only with OUTBOUND_ALLOW_LOOPBACK)."""
    if not endpoint:
        return
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise S3Error(f"MDM_S3_ENDPOINT_URL is not an http(s) URL: {endpoint!r}", error_type="ImproperlyConfigured")
    try:
        resolve_allowed(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except BlockedDestination as exc:
        raise S3Error(f"S3 endpoint refused: {exc}", error_type="BlockedDestination") from None


@functools.lru_cache(maxsize=8)
def _cached_client(key: tuple):
    return build_client(key)


def build_client(key: tuple):
    endpoint, region, access_key, secret_key, timeout = key
    kwargs = {}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if access_key:
        kwargs["aws_access_key_id"] = access_key
        kwargs["aws_secret_access_key"] = secret_key
    config = Config(
        region_name=region,
        connect_timeout=timeout[0],
        read_timeout=timeout[1],
        retries={"total_max_attempts": 1},  # one retry policy: ours (backoff), not botocore's as well
        s3={"addressing_style": "path"} if endpoint else {},
    )
    return boto3.session.Session().client("s3", config=config, **kwargs)


def _translate(exc: Exception) -> S3Error:
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "ClientError")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        transient = code in _TRANSIENT_CODES or int(status) >= 500
        cls = S3Transient if transient else S3Error
        return cls(f"S3 {code} (HTTP {status}): {err.get('Message') or code}", error_type=code, transient=transient)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, BotoConnectionError)):
        return S3Transient(
            f"S3 unreachable: {exc.__class__.__name__}", error_type=exc.__class__.__name__, transient=True
        )
    if isinstance(exc, BotoCoreError):
        return S3Error(f"S3 client error: {exc.__class__.__name__}: {exc}", error_type=exc.__class__.__name__)
    return S3Error(f"S3 error: {exc.__class__.__name__}", error_type=exc.__class__.__name__)


def _with_retries(fn):
    """Transient S3 errors back off exponentially (same base as the engine: SYNC_RETRY_BASE_SECONDS)."""

    def call():
        try:
            return fn()
        except Exception as exc:  # boto raises many types; classify them in one place
            raise _translate(exc) from None

    return backoff.on_exception(
        backoff.expo,
        S3Transient,
        max_tries=max(1, conf.MDM_S3_MAX_TRIES),
        factor=max(settings.SYNC_RETRY_BASE_SECONDS, 0.0) or 0.0,
        jitter=backoff.full_jitter,
        on_backoff=lambda d: log.warning("S3 call failed transiently (try %s), retrying", d["tries"]),
    )(call)()


def put_json(target: Target, document: dict, *, client=None) -> str:
    """Write ``document`` as JSON; returns the ETag exactly as S3 gives it (quoted hex MD5)."""
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    s3 = client or s3_client()
    response = _with_retries(
        lambda: s3.put_object(Bucket=target.bucket, Key=target.key, Body=body, ContentType="application/json")
    )
    return response["ETag"]


def get_json(target: Target, *, client=None) -> tuple[dict, str]:
    s3 = client or s3_client()

    def fetch():
        obj = s3.get_object(Bucket=target.bucket, Key=target.key)
        return obj["Body"].read(), obj.get("ETag", "")

    body, etag = _with_retries(fetch)
    try:
        return json.loads(body), etag
    except ValueError:
        raise S3Error(f"{target.uri} is not valid JSON", error_type="ValueError") from None
