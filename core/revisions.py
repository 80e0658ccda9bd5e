"""Digests of the code a process runs, for keying what that code derived (rows' source hashes, page memos)."""

from __future__ import annotations

import hashlib
import inspect
import sys


def module_source_digest(module_name: str) -> bytes | None:
    """BLAKE2b-256 of a module's source as inspect reads it now; None when there is none at hand."""
    try:
        text = inspect.getsource(sys.modules[module_name])
    except (OSError, TypeError, KeyError):  # no source at hand (a zipped or frozen module)
        return None
    return hashlib.blake2b(text.encode(), digest_size=32).digest()
