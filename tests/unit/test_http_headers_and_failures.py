"""What the HTTP client (harness/clients/http.py) records besides bodies, through the real
client over loopback: the headers as they were sent (auth included) without the routine ones,
the headers of a request that failed or was refused, what a refusal does not count, every
option of requests passed on to the socket, and secrets in the query string learned."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from harness.clients.auth import UidTokenAuth
from harness.clients.http import ApiClient, default_retry
from harness.safety.protect import HttpGuard, ProtectedTargetError
from harness.safety.redact import MASK
from tests.unit.loopback import Loopback, loopback

RUN = "itest-20261127t172503-k3f9"


@pytest.fixture
def service() -> Iterator[Loopback]:
    with loopback() as server:
        server.route("/moved", 302, {"moved": True}, Location="/new")
        server.route("/new", 200, {"ok": True}, X_Trace="t-1")
        yield server


@pytest.fixture
def api(service: Loopback) -> Iterator[ApiClient]:
    client = ApiClient(service.url, RUN)
    yield client
    client.close()


def test_the_headers_are_recorded_as_sent_auth_included_routine_ones_left_out(
    api: ApiClient,
) -> None:
    api.get("/new", auth=UidTokenAuth(7, "tok-abcdefgh"), headers={"X-Custom": "c1"})
    [exchange] = api.transcript.exchanges
    # User-Agent, X-Harness-Run, Accept…, Server, Date, Content-*: on every exchange, not shown
    assert exchange.request_headers == {"X-Custom": "c1", "uid": "7", "token": MASK}
    assert exchange.response_headers == {"X-Trace": "t-1"}
    lines = exchange.render().splitlines()
    assert lines[1] == f'  request headers: {{"X-Custom": "c1", "token": "{MASK}", "uid": "7"}}'
    assert lines[2] == '  response headers: {"X-Trace": "t-1"}'
    # the token the auth object put on the request is learned: masked anywhere now
    assert api.redactor.text("sent tok-abcdefgh") == f"sent {MASK}"


def test_a_response_without_its_request_is_recorded_with_the_headers_meant_to_be_sent(
    api: ApiClient,
) -> None:
    def replace(response: requests.Response, **_: Any) -> requests.Response:
        own = requests.Response()  # a hook's own answer: it carries no request
        own.status_code = 299
        return own

    api.get("/new", hooks={"response": [replace]}, headers={"X-Custom": "c2"})
    [exchange] = api.transcript.exchanges
    assert exchange.status == 299 and exchange.request_headers == {"X-Custom": "c2"}


def test_a_failed_request_records_the_headers_it_would_have_sent() -> None:
    with loopback() as gone:
        url = gone.url
    api = ApiClient(url, RUN, retry=default_retry().new(total=0, connect=0))
    with pytest.raises(requests.ConnectionError):
        api.get("/me", headers={"X-Custom": "c1", "Authorization": "Bearer abcdefgh12"})
    [exchange] = api.transcript.exchanges
    assert exchange.status is None and exchange.error
    assert exchange.request_headers == {"X-Custom": "c1", "Authorization": MASK}
    assert api.redactor.text("abcdefgh12") == MASK  # learned from the header it carried
    api.close()


def test_a_refused_request_is_recorded_redacted_and_takes_no_latency(service: Loopback) -> None:
    api = ApiClient(service.url, RUN, guard=HttpGuard("production"))
    with pytest.raises(ProtectedTargetError):
        api.post("/users", json={"password": "pw", "n": 1}, headers={"X-Custom": "c1"})
    [refused] = api.transcript.exchanges
    assert (refused.method, refused.path, refused.status) == ("POST", "/users", None)
    assert refused.request_body == {"password": MASK, "n": 1}
    assert refused.request_headers == {"X-Custom": "c1"}
    assert refused.error.startswith("protected target [production]: POST /users refused")
    assert api.latencies == [] and service.received == []  # nothing was sent
    api.get("/new")
    assert [(m, p) for m, p, _ in api.latencies] == [("GET", "/new")]
    api.close()


def test_a_request_with_no_method_or_url_is_refused_on_a_protected_target() -> None:
    api = ApiClient("http://127.0.0.1:9", RUN, guard=HttpGuard("production"))
    with pytest.raises(ProtectedTargetError, match=r"\[production\]:   refused"):
        api.send(requests.PreparedRequest())  # no method: no known read
    no_url = requests.PreparedRequest()
    no_url.method = "POST"
    with pytest.raises(ProtectedTargetError, match=r"\[production\]: POST  refused"):
        api.send(no_url)


def test_the_options_of_a_request_reach_the_socket(service: Loopback, api: ApiClient) -> None:
    assert api.get("/moved", allow_redirects=False).status_code == 302
    assert api.get("/moved").status_code == 200  # followed by default
    assert [r.path for r in service.received] == ["/moved", "/moved", "/new"]


def test_every_parameter_of_requests_may_be_given_by_position(
    service: Loopback, api: ApiClient
) -> None:
    nothing = (None,) * 7  # params, data, headers, cookies, files, auth, timeout
    assert api.request("GET", "/moved", *nothing, False).status_code == 302  # allow_redirects
    service.route("/login", 200, {"uid": 1})
    api.request("POST", "/login", *nothing, True, None, None, None, None, None, {"password": "pw"})
    assert json.loads(service.received[-1].body) == {"password": "pw"}  # json, the last one
    assert api.transcript.exchanges[-1].request_body == {"password": MASK}


def test_a_secret_in_the_query_string_is_learned(api: ApiClient) -> None:
    api.get("/reset?session_id=abcdefgh12&lang=en")
    assert api.transcript.exchanges[0].path == f"/reset?session_id={MASK}&lang=en"
    assert api.redactor.text("later: abcdefgh12") == f"later: {MASK}"


def test_an_empty_json_list_is_recorded_as_sent(service: Loopback, api: ApiClient) -> None:
    service.route("/bulk", 200, [])
    api.post("/bulk", json=[])
    [exchange] = api.transcript.exchanges
    assert exchange.request_body == [] and exchange.response_body == []
    assert exchange.render().splitlines()[1:] == ["  request:  []", "  response: []"]
