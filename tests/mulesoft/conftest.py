import pytest

from connectors.mulesoft import conf
from connectors.mulesoft.sandbox import MuleSoftSandbox


@pytest.fixture
def mulesoft(settings, monkeypatch):
    sandbox = MuleSoftSandbox().start()
    settings.MULESOFT_ACCESS_TOKEN = sandbox.token
    monkeypatch.setattr(conf, "TIMEOUT", (1.0, 0.3))  # the hang knob must time out quickly in tests
    yield sandbox
    sandbox.stop()


@pytest.fixture
def endpoint(org, mulesoft):
    from sync.services import setting_set

    setting_set(key=conf.ENDPOINT_SETTING, value=mulesoft.endpoint, organization=org)
    return mulesoft.endpoint
