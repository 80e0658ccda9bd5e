import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from connectors.mdm import conf
from connectors.mdm.readcache import ITEMS_CACHE
from connectors.mdm.sandbox import MdmSandbox

BUCKET = "mdm-test"
KEY = "exports/ineligible_items.json"


@pytest.fixture(scope="session")
def moto_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_server, monkeypatch):
    """A real S3 API on loopback (moto server mode), reset for each test, with the export's bucket."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=5)
    monkeypatch.setattr(conf, "MDM_S3_ENDPOINT_URL", moto_server)
    monkeypatch.setattr(conf, "MDM_S3_ACCESS_KEY_ID", "testing")
    monkeypatch.setattr(conf, "MDM_S3_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(conf, "MDM_S3_BUCKET", BUCKET)
    monkeypatch.setattr(conf, "MDM_S3_KEY", KEY)
    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    ITEMS_CACHE.clear()
    yield client
    ITEMS_CACHE.clear()


@pytest.fixture
def mdm(org, make_connection):
    sandbox = MdmSandbox().start()
    conn = make_connection(org, kind="mdm", base_url=sandbox.base_url, credentials={"api_key": sandbox.api_key})
    sandbox.connection = conn
    yield sandbox
    sandbox.stop()


@pytest.fixture
def dead_s3(monkeypatch):
    """Point the code at a loopback port nobody listens on: S3 unreachable."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    def kill():
        monkeypatch.setattr(conf, "MDM_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")

    return kill
