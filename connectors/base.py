"""The contract every upstream implements. The engine (sync/) only ever talks to these shapes.

- ``Client``: one per upstream. Base URL, auth, timeouts, the outbound guard, rate-limit pacing, and the
  single place where responses are classified (``classify``) into a ``Verdict``.
- ``Resource``: a declarative description of one kind of record (customers, products...) with a pure
  ``map()``. Adding a resource = one subclass + its model + a registry entry; the engine never changes.
- ``Page``: what one fetch returns.
"""

from __future__ import annotations

import codecs
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import backoff
import orjson
import requests
from django.conf import settings
from django.db import connections

from core.errors import (
    AuthError,
    BadPage,
    MappingError,
    PaginationStalled,
    PermanentError,
    RateLimited,
    ResponseTooLarge,
    TransientError,
    UpstreamError,
    Verdict,
)
from core.http import BlockedDestination, check_url, guarded_session
from core.paging import FetchContext, Page
from core.revisions import module_source_digest
from core.signals import upstream_rate_limited
from core.timestamps import parse_http_date, parse_retry_after, parse_upstream_datetime

if TYPE_CHECKING:
    from .models import Connection

# The contract's vocabulary lives in core (the engine speaks it too); connectors import it from here.
__all__ = [
    "AuthError",
    "BadPage",
    "Client",
    "FetchContext",
    "MappingError",
    "Page",
    "PaginationStalled",
    "PermanentError",
    "RateLimited",
    "Resource",
    "ResponseTooLarge",
    "TransientError",
    "UpstreamError",
    "Verdict",
    "default_classify",
    "error_message",
    "parse_http_date",
    "parse_retry_after",
    "parse_upstream_datetime",
]

log = logging.getLogger(__name__)


_ERROR_FOR = {
    Verdict.RETRY: TransientError,
    Verdict.RATE_LIMITED: RateLimited,
    Verdict.AUTH: AuthError,
    Verdict.FAIL: PermanentError,
}


def default_classify(response: requests.Response) -> tuple[Verdict, float | None]:
    """The shared table (after Airbyte's default_error_mapping). Clients refine it for their dialect."""
    status = response.status_code
    if status == 429:
        return Verdict.RATE_LIMITED, parse_retry_after(response.headers.get("Retry-After"))
    if status in (401, 403):
        return Verdict.AUTH, None
    if status in (408, 425) or status >= 500:
        return Verdict.RETRY, parse_retry_after(response.headers.get("Retry-After"))
    if 300 <= status < 400:
        return Verdict.FAIL, None
    if status >= 400:
        return Verdict.FAIL, None
    return Verdict.OK, None


def error_message(response: requests.Response) -> str:
    """A short human message from an error response, whatever its shape."""
    text = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            text = str(
                body.get("message")
                or body.get("error_description")
                or body.get("error")
                or body.get("description")
                or ""
            )
            code = body.get("code") or (body.get("error") if body.get("message") else "")
            if code and isinstance(code, str):
                text = f"{code}: {text}" if text else code
        if not text:
            text = json.dumps(body)[:300]
    except ValueError:
        text = (response.text or "")[:200].strip()
    method = response.request.method if response.request else "GET"
    return (
        f"HTTP {response.status_code} from {method} {_path(response.url)} at {_host_port(response.url)}: {text}".strip()
    )


def _path(url: str | None) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url or "").path or "/"


def _host_port(url: str | None) -> str:
    """host:port of a URL, nothing else: never the user info, the query string or a key in it."""
    from urllib.parse import urlsplit

    parts = urlsplit(url or "")
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, "")
    except ValueError:
        port = ""
    return f"{parts.hostname or '?'}:{port}"


def _network_kind(exc: BaseException) -> str:
    """What went wrong on the wire, in an operator's words (refused, timeout, DNS, TLS, reset)."""
    import socket
    import ssl

    if _caused_by(exc, requests.exceptions.SSLError) or _caused_by(exc, ssl.SSLError):
        return "TLS handshake failed"
    if _caused_by(exc, socket.gaierror) or "NameResolutionError" in repr(exc) or "Failed to resolve" in str(exc):
        return "DNS lookup failed"
    if _caused_by(exc, ConnectionRefusedError) or "Connection refused" in str(exc):
        return "connection refused"
    if _caused_by(exc, requests.exceptions.Timeout) or _caused_by(exc, TimeoutError) or "timed out" in str(exc):
        return "timed out"
    if _caused_by(exc, ConnectionResetError) or "reset by peer" in str(exc):
        return "connection reset"
    return exc.__class__.__name__


# --- Client ---------------------------------------------------------------------------------------------
class Client:
    """Base HTTP client. Subclasses set ``kind`` and override ``authenticate`` / ``classify`` / ``pace``."""

    kind: ClassVar[str] = ""
    expects_json: ClassVar[bool] = True
    # The digest of the source of the module defining the class, taken at import (as Resource.source_digest):
    # page memos are keyed with the code that turned bodies into records (sync.services.pagememo_revision).
    source_digest: ClassVar[bytes | None] = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.source_digest = module_source_digest(cls.__module__)

    def __init__(self, connection: Connection, *, session: requests.Session | None = None) -> None:
        self.connection = connection
        self.base_url = (connection.base_url or "").rstrip("/") + "/"
        self.session = session or guarded_session()
        self.timeout = settings.SYNC_HTTP_TIMEOUT
        self.max_tries = settings.SYNC_HTTP_MAX_TRIES
        # Our own waits between attempts (see retry_wait_seconds and rate_limit_waits).
        self._waited = threading.local()
        self._rate_limit_waits = 0
        self._rate_limit_lock = threading.Lock()

    # hooks ----------------------------------------------------------------------------------------------
    def authenticate(self, kwargs: dict[str, Any]) -> None:
        """Add auth to the request kwargs (headers/params/auth). Never log what you add."""

    def classify(self, response: requests.Response) -> tuple[Verdict, float | None]:
        return default_classify(response)

    def pace(self, response: requests.Response) -> None:
        """Called after every response: sleep proactively from rate-limit headers if needed."""

    def on_auth_error(self, error: AuthError) -> bool:
        """Called once on an AUTH verdict. Return True if credentials were refreshed and the call may retry."""
        return False

    # our own waits ---------------------------------------------------------------------------------------
    def retry_wait_seconds(self) -> float:
        """Seconds the calling thread has been told to sleep between attempts of its requests through this
        client (the waits backoff announces and then sleeps: a 429's Retry-After, a transient error's backoff).
        A page's wall time minus its CPU time and this is what the upstream made it wait: a paging loop deciding
        whether the upstream is slow must not count our own sleeps."""
        return getattr(self._waited, "seconds", 0.0)

    @property
    def rate_limit_waits(self) -> int:
        """How many times a request through this client, in any thread, waited before its next attempt after a
        RATE_LIMITED verdict (a 429; one on the last attempt raises instead and is not counted). A paging loop
        that reads ahead in parallel reads less far ahead each time this grows."""
        return self._rate_limit_waits

    def _on_retry_wait(self, details: dict) -> None:  # backoff's on_backoff: called just before each sleep
        self._waited.seconds = self.retry_wait_seconds() + float(details.get("wait") or 0.0)

    def _on_rate_limit_wait(self, details: dict) -> None:
        self._on_retry_wait(details)
        with self._rate_limit_lock:
            self._rate_limit_waits += 1

    # the one request path --------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        # Any absolute URL (whatever its scheme) is used as is, so check_url sees and refuses "ftp://..."
        # instead of it being glued onto the base URL as a path.
        if "://" in path.split("?", 1)[0]:
            return path
        return self.base_url + path.lstrip("/")

    def request(self, method: str, path: str, *, params=None, json=None, data=None, headers=None) -> requests.Response:
        """Send with retries: transient errors back off exponentially (``backoff``), 429 waits exactly as
        told, an AUTH verdict gets one chance to refresh credentials. Raises an ``UpstreamError``."""
        refreshed = False
        while True:
            try:
                kw = {"params": params, "json": json, "data": data, "headers": headers}
                return self._retrying(method, path, kw)
            except AuthError as exc:
                if refreshed or not self.on_auth_error(exc):
                    raise
                refreshed = True

    @functools.cached_property
    def _retrying(self):
        """send_once under both retry policies, decorated once per client: backoff looks up its logger and
        inspects the target when decorating, which cost ~0.1 ms a request done per call (issue 20: ~3 % of a
        first sync's interpreter time). What may change between requests is still read per request: backoff
        calls ``max_tries`` and the wait generators' arguments at each invocation (``self.max_tries``, set on
        some clients after construction; SYNC_RETRY_BASE_SECONDS through _retry_factor)."""

        @backoff.on_exception(
            backoff.runtime,
            RateLimited,
            value=lambda exc: _bounded_wait(exc.wait),
            max_tries=lambda: self.max_tries,
            jitter=None,
            on_backoff=self._on_rate_limit_wait,
        )
        @backoff.on_exception(
            backoff.expo,
            TransientError,
            max_tries=lambda: self.max_tries,
            factor=_retry_factor,
            jitter=backoff.full_jitter,
            on_backoff=self._on_retry_wait,
        )
        def attempt(method, path, kw):
            return self.send_once(method, path, **kw)

        return attempt

    def send_once(self, method, path, *, params=None, json=None, data=None, headers=None) -> requests.Response:
        url = self.url(path)
        try:
            check_url(url)
        except BlockedDestination as exc:
            raise PermanentError(f"outbound request refused: {exc}") from None
        kwargs: dict[str, Any] = {
            "params": dict(params or {}),
            "headers": {"Accept": "application/json", **(headers or {})},
            "timeout": self.timeout,
            "allow_redirects": False,
            "stream": True,  # read the body ourselves, bounded (read_bounded)
        }
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        self.authenticate(kwargs)
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            if _caused_by(exc, BlockedDestination):
                raise PermanentError(f"outbound request refused: {_caused_by(exc, BlockedDestination)}") from None
            raise TransientError(
                f"network error talking to {self.kind or 'upstream'} at {_host_port(url)}: {_network_kind(exc)}"
            ) from None
        except requests.exceptions.TooManyRedirects:
            # guarded_session() sets max_redirects=0: any 3xx lands here. Following it could lead anywhere.
            raise PermanentError(
                f"{self.kind or 'upstream'} answered {_path(url)} with a redirect; redirects are not followed"
            ) from None
        except requests.exceptions.Timeout:
            raise TransientError(
                f"{self.kind or 'upstream'} at {_host_port(url)} timed out after {self.timeout}s"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise TransientError(f"request to {self.kind or 'upstream'} failed: {exc.__class__.__name__}") from None
        try:
            read_bounded(response, settings.SYNC_MAX_RESPONSE_BYTES)
        except requests.exceptions.RequestException:
            raise TransientError(
                f"{self.kind or 'upstream'}: the connection broke while reading {_path(url)}"
            ) from None
        self.pace(response)
        verdict, wait = self.classify(response)
        if verdict is Verdict.RATE_LIMITED:
            upstream_rate_limited.send_robust(sender=type(self), connection=self.connection)  # counted in ops
        if verdict is Verdict.OK:
            if self.expects_json and response.content and not _looks_json(response):
                raise TransientError(
                    f"expected JSON from {_path(response.url)}, got {response.headers.get('Content-Type', 'no content type')}"
                )
            return response
        raise _ERROR_FOR[verdict](error_message(response), status=response.status_code, wait=wait)

    def get_json(self, path: str, *, params=None, headers=None) -> tuple[Any, requests.Response]:
        response = self.request("GET", path, params=params, headers=headers)
        return page_json(response), response

    def close(self) -> None:
        self.session.close()


def closing_connections(fn):
    """``fn`` for a paging loop's pool thread: the thread's database connections are closed when it returns. A
    page request can touch the database (a 429 counted by ops, a connection marked for re-authorisation); Django
    opens a connection per thread and leaves it open until the thread is collected, and a pool's threads outlive
    the scan (shutdown(wait=False)), so each such thread held a session of its own, idle, after its run (it kept
    the test database from being dropped). Only connections opened in this thread are closed (pool threads
    hold no transaction); ``close_all`` looks at this thread's opened ones alone (a few us a page)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            try:
                connections.close_all()
            except Exception:  # a page already fetched must not fail for it; the thread's end closes it anyway
                log.warning("a page thread's database connection did not close", exc_info=True)

    return run


def page_json(response: requests.Response) -> Any:
    """The body of a page as JSON (response_json); a body that does not parse raises BadPage."""
    try:
        return response_json(response)
    except ValueError:
        raise BadPage(f"malformed JSON from {_path(response.url)}") from None
    except RecursionError:  # nested deeper than the parser goes: the page's fault, not a crash
        raise BadPage(f"JSON nested too deeply from {_path(response.url)}") from None


def page_json_again(content: bytes, encoding: str | None, path: str) -> Any:
    """page_json over a body read before (a page's records made again, Page.reload): a response holding the
    same bytes and declared encoding, which is all page_json reads (requests' own ``json()`` too: its charset
    guess reads the bytes), and the URL's path, which its errors name (never the query: it may hold keys).
    Plain values, so a fetch process can send them instead of the records."""
    response = requests.Response()
    response._content, response.encoding, response.url, response.status_code = content, encoding, path, 200
    return page_json(response)


def body_again(response) -> tuple[bytes, str | None, str] | None:
    """page_json_again's arguments for a body page_json read from ``response``: its bytes, its encoding and the
    URL's path (never the query, which may hold keys). None where the response holds no body's bytes."""
    content = getattr(response, "content", None)
    if type(content) is not bytes:
        return None
    return content, response.encoding, _path(response.url)


def body_reload(method: Callable, response) -> Callable[[], list] | None:
    """Page.reload for a page page_json read from ``response``: ``method`` (a resource's own, reading nothing but
    its arguments: Resource.reload_travels) over body_again's values. None where there are none (the page's
    records are then kept)."""
    again = body_again(response)
    return functools.partial(method, *again) if again is not None else None


def response_json(response: requests.Response) -> Any:
    """The body as JSON: orjson for a body read as UTF-8 (a 100-customer WooCommerce page took ~0.5 ms against
    ~0.7-1.1 ms with ``Response.json()``, on the fetch threads every sync waits for), and ``Response.json()``
    for every other body: one declared in another charset (or ``text/*`` without one, which requests reads
    as ISO-8859-1), one orjson refuses (a BOM, NaN, lone surrogate escapes, malformed text), or one orjson
    would read differently (an integer beyond 64 bits, which orjson turns into a float; _long_integer).
    So what parses, to what, and what raises ValueError stays as ``Response.json()`` had it."""
    content = response.content or b""
    encoding = response.encoding
    if (encoding is None or _is_utf8(encoding)) and not _long_integer(content):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return response.json()


@functools.lru_cache(maxsize=32)
def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


# Digits as "0"; ":", "[" and "," (where a JSON number may start) as ":"; every other byte as "x"; blanks and
# minus signs deleted. A number of 19 digits or more is then ":" and 19 zeros, or 19 zeros at the start: one
# bytes.translate and one search, in C, whatever the page holds (a page with a 19-digit run in every record,
# such as zero-padded ids in URLs, took a Python step per run before: 0.16 against 0.11 ms a page).
_NUMBER_MARKS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x3A if b in b":[," else 0x78 for b in range(256))
_LONG_RUN = b"0" * 19  # the fewest digits of an integer orjson may not hold (beyond -2**63 .. 2**64 - 1)
_LONG_NUMBER = b":" + _LONG_RUN
_DIGIT_MARKS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x78 for b in range(256))  # digits as "0", the rest "x"


def _long_integer(content: bytes) -> bool:
    """Might ``content`` hold an integer of 19 or more digits? A run of 19 digits counts when the character
    before it (past blanks and a minus sign) is where a number starts (":", "[", ",", or none): not one inside
    a string such as a URL or a hash ("/", a letter), nor the fraction of a float ("."). A false yes (a run of
    19 digits in a string after a ":", say "b:1234567890123456789") costs only the slower parse.

    No regex first: ``re.search(rb"[0-9]{19}")`` answered in ~7 us only where a run came early (the bench's
    avatar URLs had one in every record); over a real 100-customer page with none (Gravatar's MD5 hashes,
    dates, phones: digits everywhere, no run of 19) it tries a match at every digit and took ~950 us, four
    times orjson's parse of that page, on the fetch thread a first sync waits for (issue 20, twenty-third
    pass: a first sync of 100,000 such customers 5.27 -> 4.13 s). The marks take ~86-94 us a page."""
    marked = content.translate(_NUMBER_MARKS, b" \t\r\n-")
    if not (marked.startswith(_LONG_RUN) or _LONG_NUMBER in marked):
        return False
    # A yes. An integer's digits have nothing between them, so a body with no run of 19 digits as it stands
    # holds none: digits a string splits by blanks or minus signs after a ":" ("IBAN: 2100 0418 4502 0005 1332")
    # only looked like one once those were gone. Asked only here, in C (~80 us): the usual page pays nothing.
    return _LONG_RUN in content.translate(_DIGIT_MARKS)


_READ_CHUNK = 1024 * 1024


def read_bounded(response: requests.Response, limit: int) -> None:
    """Read a streamed body into ``response.content`` but never more than ``limit`` bytes: a larger body (by
    its Content-Length or as it arrives) closes the connection and raises ResponseTooLarge."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise ResponseTooLarge(_too_large(response, limit, f"it announced {int(declared):,} bytes"))
    chunks: list[bytes] = []
    size = 0
    # 1 MiB reads: a 114 kB page in one read instead of two of 64 kB (~0.02 ms a page in iter_content's
    # generators); a body past the limit is still refused within one read of it.
    for chunk in response.iter_content(chunk_size=_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            response.close()
            raise ResponseTooLarge(_too_large(response, limit, "the body kept coming"))
        chunks.append(chunk)
    response._content = b"".join(chunks)  # what .content / .json() / .text read; requests' own idiom
    response._content_consumed = True


def _too_large(response: requests.Response, limit: int, why: str) -> str:
    return (
        f"response from {_path(response.url)} is over the {limit:,}-byte cap (SYNC_MAX_RESPONSE_BYTES): {why}; "
        "the page is refused and the cursor stays"
    )


def _looks_json(response: requests.Response) -> bool:
    ctype = response.headers.get("Content-Type", "")
    if "json" in ctype:
        return True
    head = response.content[:1].strip()
    return head in (b"{", b"[") and "html" not in ctype


def _caused_by(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen = set()
    stack = [exc]
    while stack:
        cur = stack.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, kind):
            return cur
        stack.extend(
            [cur.__cause__, cur.__context__, *[a for a in getattr(cur, "args", ()) if isinstance(a, BaseException)]]
        )
        reason = getattr(cur, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return None


def _retry_factor() -> float:
    return max(settings.SYNC_RETRY_BASE_SECONDS, 0.0) or 0.0


def _bounded_wait(wait: float | None) -> float:
    if wait is None:
        return 1.0
    return min(float(wait), settings.SYNC_MAX_RATE_LIMIT_WAIT)


def normalise_version(kind: str, value: Any, field: str = "version") -> str | None:
    """See Resource.version. Text order equals the type's order, so the database compares it as text
    (byte order, COLLATE "C" on PostgreSQL) and needs no per-resource column type."""
    if value in (None, ""):
        return None
    if kind == "integer":
        if isinstance(value, bool):
            raise MappingError(f"{field} is not an integer: {value!r}")
        try:
            number = int(str(value).strip())
        except ValueError:
            raise MappingError(f"{field} is not an integer: {str(value)[:40]!r}") from None
        if number < 0 or number >= 10**30:
            raise MappingError(f"{field} is out of range: {number}")
        return f"{number:030d}"
    if kind == "timestamp":
        try:
            parsed = parse_upstream_datetime(value)  # cached per text: the mapper usually parsed it already
        except MappingError:
            raise MappingError(f"{field} is not a timestamp: {str(value)[:40]!r}") from None
        if value.__class__ is str and len(value) == 19 and value.isascii() and value[10] == "T":
            # The common form (WooCommerce's *_gmt: UTC without a zone, to the second), valid since it
            # parsed: the text below is what the isoformat would give, without building it.
            if value[4] == value[7] == "-" and value[13] == value[16] == ":":
                return value + ".000000Z"
        # isoformat pads the year to four digits (strftime's %Y does not, for years before 1000).
        return parsed.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z" if parsed else None
    raise ValueError(f"unknown version kind {kind!r} (integer or timestamp)")


# --- Paging and resources --------------------------------------------------------------------------------
# What reads a record on an unchanged record's behalf (Resource.hash_ignores' contract): a subclass that
# defines one of these does not inherit its parent's hash_ignores.
_HASH_READERS = frozenset({"map", "is_deleted", "external_id", "version", "version_field"})


class Resource:
    """Declarative description of one upstream resource.

    Subclasses set ``name``, ``model`` (app_label.Model, with ``connection``/``organization``/``external_id``
    fields and a unique constraint on (connection, external_id)) and implement ``fetch_page`` and ``map``.
    """

    name: ClassVar[str] = ""
    model: ClassVar[str] = ""
    page_size: ClassVar[int] = 100
    # "none" (always a full scan), "version" (integer, exclusive), "timestamp" (ISO 8601 UTC, inclusive)
    cursor_kind: ClassVar[str] = "none"
    # After a complete full scan, local rows absent upstream are marked deleted (never on an incomplete scan).
    mark_missing_deleted: ClassVar[bool] = False
    # Fields of the model updated on conflict (default: every mapped field).
    update_fields: ClassVar[list[str] | None] = None
    # The upstream field that orders this resource's snapshots (invariant 14) and its type: "integer" or
    # "timestamp". An upsert never replaces a stored row with an older snapshot; "" = none declared (the
    # content hash alone keeps an equal snapshot from writing).
    version_field: ClassVar[str] = ""
    version_kind: ClassVar[str] = ""
    # Top-level fields of a record that ``map`` never reads and that the upstream changes without the record
    # changing for us (a WooCommerce customer's login stamp in meta_data): left out of the record's source
    # hash, so a record changed only there is neither mapped nor written again on the next scan. Only fields
    # that nothing run on an unchanged record's behalf reads: not map(), is_deleted(), the version field or
    # external_id() (a change there would be missed, or the row keep an old version). A tuple of names. A
    # subclass that defines one of those itself (or takes it from a mixin) hashes whole records unless it
    # declares its own; one that overrides a helper its map calls must declare them again itself.
    hash_ignores: ClassVar[tuple[str, ...]] = ()
    # True where every page's Page.reload is a functools.partial of one of this resource's own methods over
    # plain values (bytes, text, numbers, lists of those) whose result depends on those values alone, not on
    # anything the resource gathers while paging: a fetch process then sends those values instead of the
    # records, and the parent calls the method of that name on its own resource (sync.engine._travelling).
    reload_travels: ClassVar[bool] = False
    # The hash of the source of the module that defines the class, taken when the class is created (at
    # import, so it is the code this process runs): sync.engine.mapping_revision keys the rows' hashes with
    # it. Read later, the file would be whatever a deploy has checked out since, while this process still
    # maps with the code it loaded (docs/deploy.md "Upgrades": new code on disk, then workers restarted).
    source_digest: ClassVar[bytes | None] = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.source_digest = module_source_digest(cls.__module__)
        for klass in cls.__mro__:
            if "hash_ignores" in klass.__dict__:
                break  # the class that declared them, or one before it in the order, reads records as declared
            if _HASH_READERS.intersection(klass.__dict__):
                # This class (or a mixin before the declaring class) reads records its own way (its own map,
                # say), and may read what the declaring class left out of the hash: a change there would never
                # be written. It hashes whole records unless it declares its own hash_ignores.
                cls.hash_ignores = ()
                break
        ignores = cls.hash_ignores
        if not isinstance(ignores, tuple) or not all(isinstance(key, str) for key in ignores):
            # ("meta_data") is a string: its letters would be left out, not the field.
            raise TypeError(f"{cls.__name__}.hash_ignores must be a tuple of field names, not {ignores!r}")

    def fetch_page(self, ctx: FetchContext) -> Page:  # pragma: no cover - abstract
        raise NotImplementedError

    def iter_pages(self, ctx: FetchContext) -> Iterator[Page]:
        """Yield pages from ``ctx.token`` on. Override to fetch concurrently when the page count is known.
        Each page's ``next_token`` must let a crashed run resume right after that page."""
        token = ctx.token
        seen_tokens: set[str] = set()
        while True:
            page = self.fetch_page(FetchContext(ctx.client, ctx.cursor, token, ctx.full_scan, ctx.params))
            nxt = page.next_token
            yield page
            page = None  # not held while the next page is fetched (the engine may let its records go)
            if nxt is None:
                return
            key = json.dumps(nxt, sort_keys=True, default=str)
            if key in seen_tokens or nxt == token:
                raise PaginationStalled(f"{self.name}: pagination repeated token {key}")
            seen_tokens.add(key)
            token = nxt

    def external_id(self, record: dict) -> str:
        try:
            value = record["id"]
        except (KeyError, TypeError):
            raise MappingError("record has no id") from None
        if value in (None, ""):
            raise MappingError("record has an empty id")
        return str(value)

    def is_deleted(self, record: dict) -> bool:
        """True if this record is a deletion (tombstone). Deleted records mark the local row deleted."""
        return False

    def map(self, record: dict) -> dict:  # pragma: no cover - abstract
        """Pure: no DB, no HTTP. Return model field values (without connection/organization/external_id).
        Raise MappingError with a clear message for a record that cannot be accepted."""
        raise NotImplementedError

    def version(self, record: dict) -> str | None:
        """The snapshot's order key as text that sorts as the declared type: a zero-padded integer, or an
        ISO 8601 UTC time with microseconds. None when the record carries none. A value that is not of the
        declared type raises MappingError (the record fails its own line)."""
        if not self.version_field or not isinstance(record, dict):
            return None
        return normalise_version(self.version_kind, record.get(self.version_field), self.version_field)

    def record_cursor(self, record: dict) -> str | None:
        """The cursor value of one record (for timestamp/version cursors); None if not applicable."""
        return None


# This module's own digest, taken now (at import), for the classes defined here: parsing (response_json),
# external ids and paging helpers live here, and page memos are keyed with them (sync.services.pagememo).
Resource.source_digest = Client.source_digest = module_source_digest(__name__)
