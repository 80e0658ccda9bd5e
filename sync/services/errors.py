"""The errors services raise for the interfaces to translate into 4xx (sync/api/exceptions.py, commands)."""

from __future__ import annotations


class SyncServiceError(Exception):
    http_status = 400
    code = "invalid"


class IdempotencyConflict(SyncServiceError):
    http_status = 422
    code = "idempotency_key_reused"


class RunActive(SyncServiceError):
    http_status = 409
    code = "run_active"


class InvalidQueueAction(SyncServiceError):
    http_status = 409
    code = "invalid_queue_action"


class ConnectionUnavailable(SyncServiceError):
    http_status = 409
    code = "connection_unavailable"


class RunSkipped(SyncServiceError):
    """The run's policy did not let it start (a feature flag is off); recorded as skipped with the reason."""

    http_status = 409
    code = "run_skipped"


class UnknownResourceError(SyncServiceError):
    http_status = 400
    code = "unknown_resource"


class InvalidIdempotencyKey(SyncServiceError):
    http_status = 400
    code = "invalid_idempotency_key"
