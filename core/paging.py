"""What one fetch returns and what the engine hands a resource when fetching."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Page:
    records: list[dict]
    next_token: Any = None  # JSON-serialisable; None means this was the last page
    cursor: str | None = None  # the cursor value this page's records reach (committed only after processing)
    total: int | None = None  # total records upstream says exist, when it says
    # Optional: a digest of everything ``records`` was made from (the response body, and whatever picked the
    # records out of it), so that two pages with equal digests hold equal records. The engine then reuses
    # what it derived from those records the last time (sync.services.pagememo: their source hashes)
    # instead of deriving it again. None (the default) promises nothing.
    digest: bytes | None = None


@dataclass
class FetchContext:
    """What the engine hands a resource when fetching. ``cursor`` is the committed cursor ('' = none)."""

    client: Any  # the connector's Client
    cursor: str
    token: Any
    full_scan: bool
    params: dict = field(default_factory=dict)
