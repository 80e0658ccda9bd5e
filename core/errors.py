"""The error families both sides speak: a client classifies every failure once (``Verdict``) and raises one
of these; the engine decides what happens to the run from the class alone."""

from __future__ import annotations

import enum
from typing import ClassVar

from .redaction import redact


class Verdict(enum.Enum):
    OK = "ok"
    RETRY = "retry"  # transient: 5xx, timeouts, resets, HTML where JSON was expected
    RATE_LIMITED = "rate_limited"  # 429: wait as the upstream says
    AUTH = "auth"  # 401/403/invalid_grant: needs re-authorisation, stop syncing
    FAIL = "fail"  # permanent: 4xx, blocked destination, redirect


class UpstreamError(Exception):
    verdict: ClassVar[Verdict] = Verdict.FAIL

    def __init__(self, message: str, *, status: int | None = None, wait: float | None = None, code: str = "") -> None:
        super().__init__(redact(message))
        self.status = status
        self.wait = wait
        self.code = code

    @property
    def message(self) -> str:
        return str(self)


class TransientError(UpstreamError):
    verdict = Verdict.RETRY


class RateLimited(UpstreamError):
    verdict = Verdict.RATE_LIMITED


class AuthError(UpstreamError):
    verdict = Verdict.AUTH


class PermanentError(UpstreamError):
    verdict = Verdict.FAIL


class BadPage(UpstreamError):
    """A page that cannot be parsed: the run fails and the cursor stays where it was."""

    verdict = Verdict.FAIL


class ReloadMismatch(BadPage):
    """A page's records made again (core.paging.Page.reload) are not the records it held: the run fails as for
    a bad page, the group being stored rolled back (not stored as drafts, whose payloads would be wrong)."""


class KnownBodyMismatch(BadPage):
    """A body read as known from its memo (core.paging.KnownPage) parsed to other records than the memo said
    (a parser change its revision did not catch): the run fails as for a bad page, and the engine forgets the
    resource's body memos so the next run parses every body."""


class ResponseTooLarge(BadPage):
    """A response body over the cap (SYNC_MAX_RESPONSE_BYTES): refused while it streams in, so memory stays
    bounded; the page fails and the cursor stays."""


class PaginationStalled(UpstreamError):
    """Paging stopped advancing (same token twice, or more pages than the upstream said exist)."""

    verdict = Verdict.FAIL


class MappingError(ValueError):
    """A record the mapper cannot accept. Only its own line fails."""


def error_body(code: str, message: str, details=None) -> dict:
    """The one error shape of every machine-facing answer (API, webhooks): ``{"error": {code, message,
    details}}``, message redacted. sync.api.exceptions re-exports it for the API."""
    return {"error": {"code": code, "message": redact(message), "details": details if details is not None else {}}}
