"""MDM client: API key in the ``X-API-Key`` header; retries/backoff come from the base Client."""

from __future__ import annotations

from typing import Any

from connectors.base import Client

from . import conf


class MdmClient(Client):
    kind = "mdm"

    def __init__(self, connection, *, session=None) -> None:
        super().__init__(connection, session=session)
        self.timeout = conf.MDM_TIMEOUT
        self.max_tries = conf.MDM_MAX_TRIES
        self._api_key = connection.credentials.get("api_key", "")

    def authenticate(self, kwargs: dict[str, Any]) -> None:
        if self._api_key:
            kwargs["headers"]["X-API-Key"] = self._api_key
