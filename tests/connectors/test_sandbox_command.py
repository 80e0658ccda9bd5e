"""`manage.py sandbox`: every built-in upstream answers on loopback; the printout carries URLs and hints, no secrets."""

from __future__ import annotations

import contextlib
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command

from connectors import sandbox_catalog as catalog


def test_every_sandbox_answers_on_loopback():
    with contextlib.ExitStack() as stack:
        served = catalog.start(stack)
        kinds = {s.kind for s in served}
        assert {"woocommerce", "lightspeed", "tiendanube", "mulesoft", "mdm"} <= kinds
        paths = {
            "woocommerce": "/wp-json/wc/v3/customers",
            "lightspeed": "/api/2.0/customers",
            "tiendanube": "/v1/1001/products",
            "mulesoft": "/loyalty/tiers",
            "mdm": "/api/v1/ineligible-items",
            "s3": "/",
        }
        for entry in served:
            assert entry.url.startswith("http://127.0.0.1:")
            answer = requests.get(entry.url + paths[entry.kind], timeout=10)
            assert answer.status_code in (200, 401, 403), (entry.kind, answer.status_code)
            if entry.kind != "s3":
                assert answer.status_code != 200  # no credentials sent: the sandbox refuses, like the real one


def test_command_prints_urls_and_hints_without_secrets():
    from connectors.lightspeed.sandbox import LightspeedSandbox
    from connectors.mdm.sandbox import MdmSandbox
    from connectors.mulesoft.sandbox import MuleSoftSandbox
    from connectors.tiendanube.sandbox import SANDBOX_SECRET as TN_SECRET
    from connectors.woocommerce.sandbox import SANDBOX_KEY, SANDBOX_SECRET

    out = StringIO()
    call_command("sandbox", "--exit-after", "0", stdout=out)
    text = out.getvalue()
    for kind in ("woocommerce", "lightspeed", "tiendanube", "mulesoft", "mdm"):
        assert f"\n{kind}" in "\n" + text
    assert text.count("http://127.0.0.1:") >= 5
    ls = LightspeedSandbox(customers=0, products=0, customer_groups=0)
    for secret in (
        SANDBOX_KEY,
        SANDBOX_SECRET,
        TN_SECRET,
        ls.client_secret,
        *ls.personal_tokens,
        MdmSandbox.api_key,
        MuleSoftSandbox.token,
    ):
        assert secret not in text


def test_unknown_kind_is_a_usage_error():
    with pytest.raises(CommandError) as exc:
        call_command("sandbox", "--only", "nope", "--exit-after", "0", stdout=StringIO())
    assert exc.value.returncode == 2
