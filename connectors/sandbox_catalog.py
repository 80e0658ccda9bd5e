"""Every built-in sandbox upstream, started on loopback for `manage.py sandbox` (and the demo's S3).

Each starter serves one sandbox inside an ExitStack and returns what to print: its URL and a hint on how to
point a connection at it. Hints name where the sandbox's (fixed, fake) credentials are defined instead of
printing them, so nothing that looks like a secret reaches a terminal or a log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from connectors.sandbox.s3 import s3_server
from connectors.sandbox.server import serve


@dataclass(frozen=True)
class Served:
    kind: str
    url: str
    hint: str


def _woocommerce(stack: contextlib.ExitStack, port: int) -> Served:
    from connectors.woocommerce.sandbox import WooSandbox

    sandbox = WooSandbox(seed=7, size=797, orders=400, products=120)
    url = stack.enter_context(serve(sandbox.app, port=port))
    return Served(
        "woocommerce",
        url,
        f"connection kind woocommerce, base URL {url}; consumer key/secret: SANDBOX_KEY / SANDBOX_SECRET "
        "in connectors/woocommerce/sandbox.py",
    )


def _lightspeed(stack: contextlib.ExitStack, port: int) -> Served:
    from connectors.lightspeed.sandbox import LightspeedSandbox

    sandbox = LightspeedSandbox()
    url = stack.enter_context(serve(sandbox.app(), port=port))
    return Served(
        "lightspeed",
        url,
        f"LIGHTSPEED_AUTHORIZE_URL={url}/connect LIGHTSPEED_TOKEN_URL={url}/api/1.0/token "
        f"LIGHTSPEED_API_BASE_URL={url}/api/2.0/ (domain prefix {sandbox.domain_prefix}); client id/secret and "
        "personal token: LightspeedSandbox in connectors/lightspeed/sandbox.py",
    )


def _tiendanube(stack: contextlib.ExitStack, port: int) -> Served:
    from connectors.tiendanube.sandbox import TiendanubeSandbox

    recent = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=4)
    sandbox = TiendanubeSandbox(stores=2, records=250, base_time=recent)
    url = stack.enter_context(serve(sandbox.app, port=port))
    return Served(
        "tiendanube",
        url,
        f"TIENDANUBE_APP_ID={sandbox.app_id} TIENDANUBE_AUTHORIZE_URL={url}/apps/{{app_id}}/authorize "
        f"TIENDANUBE_TOKEN_URL={url}/apps/authorize/token TIENDANUBE_API_URL={url}/v1/ (stores 1001, 1002); "
        "client secret: SANDBOX_SECRET in connectors/tiendanube/sandbox.py",
    )


def _mulesoft(stack: contextlib.ExitStack, port: int) -> Served:
    from connectors.mulesoft.sandbox import MuleSoftSandbox

    sandbox = MuleSoftSandbox()
    url = stack.enter_context(serve(sandbox.app, port=port))
    return Served(
        "mulesoft",
        f"{url}/api/v1",
        f"SystemSetting mulesoft_loyalty_sync_endpoint={url}/api/v1; access token: MuleSoftSandbox.token in "
        "connectors/mulesoft/sandbox.py",
    )


def _mdm(stack: contextlib.ExitStack, port: int) -> Served:
    from connectors.mdm.sandbox import MdmSandbox, make_items

    sandbox = MdmSandbox(items=make_items(120))
    url = stack.enter_context(serve(sandbox.app, port=port))
    return Served(
        "mdm",
        url,
        f"connection kind mdm, base URL {url}; API key: MdmSandbox.api_key in connectors/mdm/sandbox.py "
        "(the export also needs S3: see s3 below)",
    )


def _s3(stack: contextlib.ExitStack, port: int) -> Served | None:
    url = s3_server(stack, port)
    if url is None:
        return None
    return Served(
        "s3",
        url,
        f"MDM_S3_ENDPOINT_URL={url} with any access key id / secret (moto accepts all); create the bucket first",
    )


STARTERS: dict[str, Callable[[contextlib.ExitStack, int], Served | None]] = {
    "woocommerce": _woocommerce,
    "lightspeed": _lightspeed,
    "tiendanube": _tiendanube,
    "mulesoft": _mulesoft,
    "mdm": _mdm,
    "s3": _s3,
}


def start(stack: contextlib.ExitStack, kinds: list[str] | None = None, port: int = 0) -> list[Served]:
    """Start the sandboxes of ``kinds`` (all by default), on port, port+1, ... (0: any free port)."""
    served = []
    for i, kind in enumerate(kinds or list(STARTERS)):
        entry = STARTERS[kind](stack, port + i if port else 0)
        if entry is not None:
            served.append(entry)
    return served
