"""WooClient against canned responses: auth forms, HTTPS rule, and the error dialect."""

from __future__ import annotations

import base64

import pytest
import responses

from connectors.base import AuthError, BadPage, PermanentError, TransientError
from connectors.woocommerce.client import WooClient, api_root

STORE = "https://shop.example"
URL = f"{STORE}/wp-json/wc/v3/customers"


@pytest.fixture
def conn(org, make_connection):
    return make_connection(org, base_url=STORE, credentials={"consumer_key": "ck_live1", "consumer_secret": "cs_live1"})


def test_api_root_accepts_store_or_api_url():
    assert api_root("https://s.example") == "https://s.example/wp-json/wc/v3/"
    assert api_root("https://s.example/wp-json/wc/v3") == "https://s.example/wp-json/wc/v3/"


@responses.activate
def test_basic_auth_over_https(conn):
    responses.get(URL, json=[{"id": 1}])
    data, _ = WooClient(conn).get_json("customers", params={"role": "all"})
    assert data == [{"id": 1}]
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(b"ck_live1:cs_live1").decode()
    assert "consumer_key" not in sent.url


@responses.activate
def test_query_string_auth_option(conn):
    conn.config = {"auth_in_query": True}
    responses.get(URL, json=[])
    WooClient(conn).get_json("customers")
    sent = responses.calls[0].request
    assert "consumer_key=ck_live1" in sent.url and "consumer_secret=cs_live1" in sent.url
    assert "Authorization" not in sent.headers


def test_plain_http_to_a_real_host_is_refused(org, make_connection):
    conn = make_connection(
        org, base_url="http://shop.example", credentials={"consumer_key": "k", "consumer_secret": "s"}
    )
    with pytest.raises(PermanentError, match="HTTPS"):
        WooClient(conn).get_json("customers")


@responses.activate
def test_unknown_key_is_auth(conn):
    responses.get(
        URL,
        status=401,
        json={
            "code": "woocommerce_rest_cannot_view",
            "message": "Sorry, you cannot list resources.",
            "data": {"status": 401},
        },
    )
    with pytest.raises(AuthError, match="woocommerce_rest_cannot_view"):
        WooClient(conn).get_json("customers")
    assert len(responses.calls) == 1  # never retried


@responses.activate
def test_invalid_param_is_permanent(conn):
    responses.get(
        URL,
        status=400,
        json={
            "code": "rest_invalid_param",
            "message": "Invalid parameter(s): per_page",
            "data": {"status": 400, "params": {"per_page": "..."}},
        },
    )
    with pytest.raises(PermanentError, match="rest_invalid_param"):
        WooClient(conn).get_json("customers", params={"per_page": 500})
    assert len(responses.calls) == 1


@responses.activate
def test_5xx_is_retried_then_succeeds(conn, fake_clock):
    responses.get(URL, status=502, body="<html>Bad gateway</html>", content_type="text/html")
    responses.get(URL, status=500, json={"code": "internal_server_error"})
    responses.get(URL, json=[{"id": 3}])
    data, _ = WooClient(conn).get_json("customers")
    assert data == [{"id": 3}] and len(responses.calls) == 3


@responses.activate
def test_html_with_200_is_transient(conn, fake_clock, settings):
    settings.SYNC_HTTP_MAX_TRIES = 2
    responses.get(URL, body="<!DOCTYPE html><html>maintenance</html>", content_type="text/html")
    with pytest.raises(TransientError, match="expected JSON"):
        WooClient(conn).get_json("customers")
    assert len(responses.calls) == 2


@responses.activate
def test_429_waits_as_told(conn, fake_clock):
    responses.get(URL, status=429, headers={"Retry-After": "7"}, json={"code": "too_many_requests"})
    responses.get(URL, json=[])
    WooClient(conn).get_json("customers")
    assert 7 in fake_clock.sleeps and len(responses.calls) == 2


@responses.activate
def test_malformed_json_is_a_bad_page(conn):
    responses.get(URL, body='[{"id": 1,', content_type="application/json")
    with pytest.raises(BadPage):
        WooClient(conn).get_json("customers")


@responses.activate
def test_secrets_stay_out_of_errors(conn):
    conn.config = {"auth_in_query": True}
    responses.get(URL, status=404, json={"code": "rest_no_route", "message": "No route was found"})
    with pytest.raises(PermanentError) as info:
        WooClient(conn).get_json("customers")
    assert "cs_live1" not in str(info.value) and "ck_live1" not in str(info.value)
