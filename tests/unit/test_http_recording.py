"""The HTTP client's recording (harness/clients/http.py) through the real client over real
HTTP on loopback: every request carries the run's headers, and what is recorded — request
and response bodies, errors — is redacted by the client itself, secrets short or unregistered
included."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import requests

from harness.clients.http import (
    DEFAULT_TIMEOUT,
    USER_AGENT,
    ApiClient,
    Exchange,
    Transcript,
    _decode,
    default_retry,
)
from harness.safety.redact import MASK, Redactor
from tests.unit.loopback import Loopback, loopback

RUN = "itest-20261127t172503-k3f9"


@pytest.fixture
def service() -> Iterator[Loopback]:
    with loopback() as server:
        yield server


@pytest.fixture
def api(service: Loopback) -> Iterator[ApiClient]:
    client = ApiClient(service.url + "/", RUN)
    yield client
    client.close()


def test_every_request_carries_the_run_header_and_user_agent(
    service: Loopback, api: ApiClient
) -> None:
    service.route("/users", 201, {"uid": 1})
    api.get("/health")
    api.post("/users", json={"email": "a@b.test"})
    api.put("/users/1", data="x")
    api.delete("/users/1")
    api.request("PATCH", service.url + "/absolute")
    assert [r.method for r in service.received] == ["GET", "POST", "PUT", "DELETE", "PATCH"]
    for received in service.received:
        assert received.headers["X-Harness-Run"] == RUN
        assert received.headers["User-Agent"] == USER_AGENT == "env-harness/0.1"


def test_the_transcript_records_paths_statuses_and_bodies(
    service: Loopback, api: ApiClient
) -> None:
    service.route("/users", 201, {"uid": 7})
    api.request("POST", "/users", data=json.dumps({"email": "a@b.test", "name": "A"}))
    api.get(b"/missing")
    first, second = api.transcript.exchanges
    assert (first.method, first.path, first.status) == ("POST", "/users", 201)
    assert first.request_body == {"email": "a@b.test", "name": "A"}
    assert first.response_body == {"uid": 7}
    assert (second.method, second.path, second.status) == ("GET", "/missing", 404)
    assert [(m, p) for m, p, _ in api.latencies] == [("POST", "/users"), ("GET", "/missing")]
    assert all(latency >= 0 for *_, latency in api.latencies)
    rendered = api.transcript.render()
    assert rendered.splitlines()[0].startswith("POST /users -> 201 (")
    assert '  request:  {"email": "a@b.test", "name": "A"}' in rendered
    assert '  response: {"uid": 7}' in rendered
    fresh = api.new_transcript()
    assert api.transcript is fresh and fresh.render() == "(no HTTP requests)"


def test_an_absolute_url_to_another_host_is_recorded_whole(api: ApiClient) -> None:
    with loopback() as other:
        other.route("/x", 200, {"ok": True})
        api.get(other.url + "/x")
    assert api.transcript.exchanges[0].path == other.url + "/x"


def test_a_failed_request_is_recorded_redacted_and_raised() -> None:
    with loopback() as gone:
        url = gone.url
    redactor = Redactor()
    redactor.add_secret("127.0.0.1")  # stands for a secret the error message would show
    api = ApiClient(url, RUN, redactor=redactor, retry=default_retry().new(total=0, connect=0))
    with pytest.raises(requests.ConnectionError):
        api.request("POST", "/login", data=json.dumps({"email": "a@b.test", "password": "pw"}))
    [exchange] = api.transcript.exchanges
    assert exchange.status is None and exchange.path == "/login"
    assert exchange.error and "127.0.0.1" not in exchange.error and MASK in exchange.error
    assert exchange.request_body == {"email": "a@b.test", "password": MASK}
    assert exchange.render().startswith("POST /login -> ERROR ")
    api.close()


def test_short_secrets_in_request_bodies_are_masked_by_the_client(
    service: Loopback, api: ApiClient
) -> None:
    """A password far below the learning threshold is still masked under its key, at any
    depth; the service itself got the real value."""
    service.route("/login", 200, {"uid": 1})
    body = {"email": "a@b.test", "password": "pw", "nested": [{"Token": "t1"}]}
    api.request("POST", "/login", data=json.dumps(body).encode())
    [exchange] = api.transcript.exchanges
    assert exchange.request_body == {
        "email": "a@b.test",
        "password": MASK,
        "nested": [{"Token": MASK}],
    }
    rendered = api.transcript.render()
    assert '"pw"' not in rendered and '"t1"' not in rendered
    assert json.loads(service.received[0].body)["password"] == "pw"


def test_an_unregistered_secret_from_a_response_is_masked_wherever_it_turns_up(
    service: Loopback, api: ApiClient
) -> None:
    token = "tok-9f8e7d6c5b4a"  # never registered by the test: the client learns it
    password = "correct horse"  # learned from the request body it was sent in
    service.route("/login", 200, {"uid": 1, "token": token})
    service.route("/echo", 200, {"seen": f"bearer {token}", "again": password})
    api.request("POST", "/login", data=json.dumps({"email": "a@b.test", "password": password}))
    api.request("POST", "/echo", data=f"note={token}")
    api.request("POST", "/echo", data=json.dumps({"note": token, "text": f"pw {password}"}))
    rendered = api.transcript.render()
    assert token not in rendered and password not in rendered
    login, form, echo = api.transcript.exchanges
    assert login.request_body == {"email": "a@b.test", "password": MASK}
    assert login.response_body == {"uid": 1, "token": MASK}
    assert form.request_body == f"note={MASK}"
    assert form.response_body == {"seen": f"bearer {MASK}", "again": MASK}
    assert echo.request_body == {"note": MASK, "text": f"pw {MASK}"}


# requests' post()/put() pass json= and data= on together: the recording must read whichever
# holds the body, and keep it as data so that masking by key reaches it.
def test_a_json_keyword_body_is_recorded_as_data_and_masked(
    service: Loopback, api: ApiClient
) -> None:
    service.route("/login", 200, {"uid": 1})
    api.post("/login", json={"email": "a@b.test", "password": "pw"})
    assert api.transcript.exchanges[0].request_body == {"email": "a@b.test", "password": MASK}


def test_a_form_keyword_body_is_recorded_and_masked(service: Loopback, api: ApiClient) -> None:
    service.route("/login", 200, {"uid": 1})
    api.redactor.add_secret("hunter2-hunter2")
    api.post("/login", data="user=a&password=hunter2-hunter2")
    assert api.transcript.exchanges[0].request_body == f"user=a&password={MASK}"


def test_the_client_uses_its_timeout_unless_told(service: Loopback) -> None:
    api = ApiClient(service.url, RUN)
    assert api.timeout == DEFAULT_TIMEOUT == (3.05, 15.0)
    seen: list[object] = []
    send = requests.Session.send

    def spy(self: requests.Session, request: requests.PreparedRequest, **kwargs: object) -> object:
        seen.append(kwargs.get("timeout"))
        return send(self, request, **kwargs)  # type: ignore[arg-type]

    setattr(api, "send", spy.__get__(api))  # noqa: B010
    api.get("/a")
    api.get("/b", timeout=1.5)
    assert seen == [DEFAULT_TIMEOUT, 1.5]
    api.close()


def test_retries_idempotent_methods_only_on_gateway_errors() -> None:
    retry = default_retry()
    assert (retry.total, retry.connect, retry.read, retry.status) == (4, 4, 2, 3)
    assert retry.backoff_factor == 0.2 and set(retry.status_forcelist or ()) == {502, 503, 504}
    assert "POST" not in (retry.allowed_methods or ()) and "GET" in (retry.allowed_methods or ())
    assert retry.raise_on_status is False and retry.respect_retry_after_header is True


def test_a_post_is_never_retried_but_a_get_is(service: Loopback, api: ApiClient) -> None:
    service.route("/busy", 503, {"busy": True})
    api.post("/busy", json={})
    posts = len(service.received)
    api.get("/busy")
    assert posts == 1 and len(service.received) - posts == 4  # 1 + 3 status retries


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (None, None),
        (b"", None),
        ("", None),
        (b'{"a": 1}', {"a": 1}),
        ('{"a": 1}', {"a": 1}),
        (b"plain \xff", "plain \ufffd"),
        ("plain", "plain"),
        ({"a": 1}, {"a": 1}),
        (7, 7),
        ([("a", "1"), ("b", 2)], {"a": "1", "b": 2}),  # data=[(k, v), ...]: form pairs
        ([(1, "x")], {"1": "x"}),
        ([], []),
        ((1, 2), [1, 2]),
        (["ab"], ["ab"]),  # two characters are not a pair
        ([("a", "b", "c")], [("a", "b", "c")]),
        ([("a", "1"), "b"], [("a", "1"), "b"]),
        (io.BytesIO(b"secret"), "<BytesIO body>"),  # a file is not read twice
    ],
)
def test_decode(body: object, decoded: object) -> None:
    assert _decode(body) == decoded


def test_exchange_render_skips_empty_bodies_and_truncates_long_ones() -> None:
    assert Exchange("GET", "/a", 204, 1.4).render() == "GET /a -> 204 (1 ms)"
    empty = Exchange("POST", "/a", 200, 2.6, request_body="", response_body=None)
    assert empty.render() == "POST /a -> 200 (3 ms)"
    long = Exchange("POST", "/a", 200, 1, request_body="x" * 5000, response_body={"b": 1, "a": 2})
    lines = long.render().splitlines()
    assert lines[1] == "  request:  " + "x" * 1977 + "… [3023 characters cut]"  # 2,000 in all
    assert lines[2] == '  response: {"a": 2, "b": 1}'
    headers = Exchange(
        "GET", "/a", 200, 1, request_headers={"X-A": "é"}, response_headers={"b": "2"}
    )
    assert headers.render().splitlines()[1:] == [
        '  request headers: {"X-A": "é"}',
        '  response headers: {"b": "2"}',
    ]
    failed = Exchange("GET", "/a", None, 0, error="boom")
    assert failed.render() == "GET /a -> ERROR boom (0 ms)"
    assert Transcript([Exchange("GET", "/a", 200, 1), Exchange("GET", "/b", 200, 1)]).render() == (
        "GET /a -> 200 (1 ms)\nGET /b -> 200 (1 ms)"
    )


def test_latency_is_recorded_in_milliseconds(
    service: Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.clients.http as http

    ticks = iter([10.0, 10.25])
    monkeypatch.setattr(http.time, "perf_counter", lambda: next(ticks))
    api = ApiClient(service.url, RUN)
    api.get("/x")
    assert api.latencies == [("GET", "/x", 250.0)]
    assert api.transcript.exchanges[0].latency_ms == 250.0
    assert api.transcript.exchanges[0].error == ""


def test_positional_arguments_reach_the_request(service: Loopback) -> None:
    api = ApiClient(service.url + "/", RUN)
    api.request("GET", "/search", {"q": "1"})
    assert [r.path for r in service.received] == ["/search?q=1"]
    api.close()


def test_exchanges_are_shown_as_sent_and_with_every_secret_learned_since(
    service: Loopback, api: ApiClient
) -> None:
    """Shown when read, not when recorded: a json= body the test changes afterwards is shown
    as it went on the wire, a secret the redactor learns later is masked in it too, and the
    unshown record never prints its raw values."""
    service.route("/notes", 201, {"id": 1})
    note = {"text": "launch code 7kq2x9"}
    tags = ["a"]
    body = {"note": note, "tags": tags}
    api.post("/notes", json=body)
    note["text"] = "changed"
    tags.append("b")
    [pending] = api.transcript.entries
    assert "7kq2x9" not in repr(pending) and "launch" not in repr(pending)
    api.redactor.add_secret("7kq2x9")
    [exchange] = api.transcript.exchanges
    assert exchange.request_body == {"note": {"text": f"launch code {MASK}"}, "tags": ["a"]}
    assert api.transcript.entries == [exchange]  # shown once, kept shown
    assert api.transcript.exchanges[0] is exchange


def test_a_body_is_decoded_once_when_shown(service: Loopback, api: ApiClient) -> None:
    """A text body that is a JSON string is shown as that string, not decoded a second time
    (``"123"`` stays text), and a form dict as the fields it sent."""
    api.post("/a", data='"123"')
    api.post("/b", data={"n": "1"})
    text, form = api.transcript.exchanges
    assert text.request_body == "123"
    assert form.request_body == {"n": "1"}


def test_more_positional_arguments_than_requests_takes_are_refused(api: ApiClient) -> None:
    """requests raises on too many positional arguments; the client never drops the extra."""
    from harness.clients.http import _POSITIONAL

    with pytest.raises(ValueError, match="zip"):
        api.request("GET", "/x", *([None] * (len(_POSITIONAL) + 1)))
    assert api.transcript.exchanges == []  # refused before anything was sent
