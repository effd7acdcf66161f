"""Write protection of a protected target, door by door, without an environment: the HTTP
client against a loopback server that counts what reaches it, boto3 clients aimed at a closed
loopback port (a refused write raises before any connection; a read gets as far as the
network), the ledger with a real journal, the event publisher with a transport that records."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from harness.cleanup.journal import Journal, replay
from harness.cleanup.ledger import Ledger
from harness.clients.aws import Aws
from harness.clients.http import ApiClient
from harness.config import ConfigError, Profile, load_profile
from harness.events.contracts import Contracts
from harness.events.stream import Delivery, EventStream
from harness.safety.protect import HttpGuard, ProtectedTargetError, http_guard, is_read_operation


class Server:
    """A loopback HTTP server that answers everything and keeps what reached it."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.received.append((self.command, self.path, dict(self.headers), body))
                if self.path == "/redirect-me":
                    self.send_response(307)
                    self.send_header("Location", "/users")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = json.dumps(
                    {"ok": True, "session_token": "Rr5tz", "profile": {"apiKey": "Yy6uv"}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Set-Cookie", "sid=Cc8qw; Path=/")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def methods(self) -> list[str]:
        return [f"{method} {path}" for method, path, _, _ in self.received]


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def protected(**fields: Any) -> Profile:
    return Profile(name="production", protected=True, **fields)


def test_the_http_rule_lets_reads_and_named_routes_through() -> None:
    guard = HttpGuard(
        "production", ("POST /login", "PUT /users/{uid}/avatar", "DELETE /carts/*/items/**")
    )
    for method in ("GET", "head", "OPTIONS"):
        assert guard.allows(method, "/users/7?x=1")
    assert guard.allows("POST", "/login") and guard.allows("post", "/login?next=/")
    assert guard.allows("PUT", "/users/42/avatar")
    assert guard.allows("DELETE", "/carts/9/items/3/extra")
    assert not guard.allows("POST", "/users")
    assert not guard.allows("PATCH", "/login")  # the method is part of the route
    assert not guard.allows("PUT", "/users/42/avatar/x")  # {uid} is one segment
    assert not guard.allows("POST", "/login/again")
    assert not guard.allows("POST", "https://elsewhere.example/login")  # another host: never
    assert not guard.allows("POST", "//elsewhere.example/login")  # a path, not /login
    with pytest.raises(ProtectedTargetError) as refused:
        guard.check("POST", "/users?x=1")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("protected target [production]: POST /users refused")
    assert 'allow_writes = ["POST /users"]' in message


def test_an_unprotected_profile_has_no_http_rule() -> None:
    assert http_guard(Profile(name="sandbox")) is None
    assert http_guard(Profile(name="staging", protected=False)) is None
    assert http_guard(protected(allow_writes=("POST /login",))) == HttpGuard(
        "production", ("POST /login",)
    )


def test_a_refused_write_never_reaches_the_server(server: Server) -> None:
    guard = http_guard(protected(allow_writes=("POST /login", "POST /redirect-me")))
    api = ApiClient(server.url, "run-1", guard=guard)
    assert api.get("/users/1").status_code == 200
    assert api.head("/health").status_code == 200
    assert api.post("/login", json={"email": "a@b.test"}).status_code == 200
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with pytest.raises(ProtectedTargetError, match=rf"\[production\]: {method} /users "):
            api.request(method, "/users", json={"name": "x"})
    prepared = requests.Request("DELETE", f"{server.url}/users/1").prepare()
    with pytest.raises(ProtectedTargetError):
        api.send(prepared)  # past request(): the rule sits on send
    with pytest.raises(ProtectedTargetError, match="POST /users refused"):
        api.post("/redirect-me", data="x")  # allowed, but its 307 re-POSTs to /users
    assert server.methods() == ["GET /users/1", "HEAD /health", "POST /login", "POST /redirect-me"]
    rendered = api.transcript.render()
    assert "PATCH /users -> ERROR protected target [production]" in rendered


def test_writes_pass_on_an_unprotected_profile(server: Server) -> None:
    api = ApiClient(server.url, "run-1", guard=http_guard(Profile(name="sandbox")))
    assert api.post("/users", json={"name": "x"}).status_code == 200
    assert server.methods() == ["POST /users"]


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _aws(profile: Profile) -> Aws:
    config = Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1)
    return Aws(profile, config)


@pytest.mark.parametrize(
    ("service", "call"),
    [
        ("dynamodb", lambda c: c.put_item(TableName="t", Item={"k": {"S": "v"}})),
        ("dynamodb", lambda c: c.delete_item(TableName="t", Key={"k": {"S": "v"}})),
        ("dynamodb", lambda c: c.update_item(TableName="t", Key={"k": {"S": "v"}})),
        ("dynamodb", lambda c: c.batch_write_item(RequestItems={"t": []})),
        ("dynamodb", lambda c: c.transact_write_items(TransactItems=[])),
        ("dynamodb", lambda c: c.create_table(TableName="t", KeySchema=[])),
        ("dynamodb", lambda c: c.execute_statement(Statement="DELETE FROM t")),
        ("sqs", lambda c: c.create_queue(QueueName="q")),
        ("sqs", lambda c: c.send_message(QueueUrl="http://q", MessageBody="x")),
        ("sqs", lambda c: c.receive_message(QueueUrl="http://q")),  # hides messages: a write
        ("sqs", lambda c: c.delete_queue(QueueUrl="http://q")),
        ("sns", lambda c: c.publish(TopicArn="arn:aws:sns:us-east-1:1:t", Message="x")),
        ("sns", lambda c: c.subscribe(TopicArn="arn:aws:sns:us-east-1:1:t", Protocol="sqs")),
        ("cloudwatch", lambda c: c.put_metric_data(Namespace="n", MetricData=[])),
        ("logs", lambda c: c.put_log_events(logGroupName="g", logStreamName="s", logEvents=[])),
    ],
)
def test_aws_writes_are_refused_before_any_connection(service: str, call: Any) -> None:
    aws = _aws(protected(aws_endpoint_url=_closed_port(), aws_region="us-east-1"))
    client = aws.dynamodb_client if service == "dynamodb" else getattr(aws, service)
    with pytest.raises(ProtectedTargetError) as refused:
        call(client)
    assert str(refused.value).startswith(f"protected target [production]: AWS {service} ")
    assert "\n" not in str(refused.value)


def test_aws_reads_pass_the_rule_and_siblings_and_resources_keep_it() -> None:
    profile = protected(aws_endpoint_url=_closed_port(), aws_region="us-east-1")
    aws = _aws(profile)
    reads = [
        lambda: aws.dynamodb_client.get_item(TableName="t", Key={"k": {"S": "v"}}),
        lambda: aws.dynamodb_client.query(TableName="t"),
        lambda: aws.dynamodb_client.scan(TableName="t"),
        lambda: aws.sqs.get_queue_attributes(QueueUrl="http://q"),
        lambda: aws.sns.list_topics(),
        lambda: aws.sts.get_caller_identity(),
        # a failed test's service log lines: a read, allowed on a protected profile
        lambda: aws.logs.filter_log_events(logGroupName="/aws/lambda/f", filterPattern='"x"'),
    ]
    for read in reads:
        with pytest.raises(EndpointConnectionError):  # it got as far as the network
            read()
    with pytest.raises(ProtectedTargetError):
        aws.table("t").put_item(Item={"k": "v"})  # the resource API too
    twin = aws.sibling()
    with pytest.raises(ProtectedTargetError):
        twin.sqs.send_message(QueueUrl="http://q", MessageBody="x")
    open_aws = _aws(Profile(name="sandbox", aws_endpoint_url=profile.aws_endpoint_url))
    with pytest.raises(EndpointConnectionError):  # unprotected: writes go out
        open_aws.sqs.send_message(QueueUrl="http://q", MessageBody="x")


def test_read_operations_by_name() -> None:
    reads = ("GetItem", "DescribeTable", "ListQueues", "Query", "Scan", "BatchGetItem")
    for name in (*reads, "FilterLogEvents"):
        assert is_read_operation(name)
    writes = ("PutItem", "ReceiveMessage", "ExecuteStatement", "TagQueue", "AssumeRole")
    for name in (*writes, "PutLogEvents", "CreateLogGroup"):
        assert not is_read_operation(name)


def test_the_ledger_refuses_to_create_and_journals_nothing(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "w.jsonl")
    called: list[str] = []

    def create() -> dict[str, Any]:
        called.append("create")
        return {"uid": 1}

    ledger = Ledger(journal, lambda r: "deleted", protected="production")
    with pytest.raises(ProtectedTargetError) as refused:
        ledger.create("user", {"email": "x@y.test"}, create)
    assert str(refused.value).startswith("protected target [production]: creating a user")
    journal.close()
    assert called == [] and replay(tmp_path / "w.jsonl") == [] and ledger.live() == []


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def receive(self, wait_seconds: int) -> list[Delivery]:
        return []

    def publish(self, body: str, attributes: Mapping[str, str]) -> str:
        self.sent.append(body)
        return "id"

    def deliver_to_consumer(self, body: str, attributes: Mapping[str, str], delay: int = 0) -> str:
        self.sent.append(body)
        return "id"


def test_the_event_publisher_refuses(tmp_path: Path) -> None:
    transport = RecordingTransport()
    contracts = Contracts.from_directory(tmp_path)
    stream = EventStream(transport, contracts, keep="x", protected="production")
    with pytest.raises(ProtectedTargetError, match=r"\[production\]: publishing an event"):
        stream.publish({"type": "user.created"})
    with pytest.raises(ProtectedTargetError, match="delivering an event"):
        stream.deliver_to_consumer({"type": "user.created"})
    assert transport.sent == []
    EventStream(transport, contracts, keep="x").publish({"type": "t"})
    assert len(transport.sent) == 1


def test_allow_writes_and_sensitive_keys_in_a_profile(tmp_path: Path) -> None:
    profiles = tmp_path / "environments.toml"
    profiles.write_text(
        '[prod]\nbase_url = "https://api.example.com"\nprotected = true\n'
        'allow_writes = ["post /login", "POST /sessions/{id}"]\n'
        'sensitive_keys = ["pin", "otp"]\n'
    )
    profile = load_profile("prod", profiles, environ={}, declared={})
    assert profile.allow_writes == ("POST /login", "POST /sessions/{id}")
    assert profile.sensitive_keys == ("pin", "otp")
    narrower = {"HARNESS_ALLOW_WRITES": "POST /login"}  # a variable may only narrow the file's
    assert load_profile("prod", profiles, environ=narrower, declared={}).allow_writes == (
        "POST /login",
    )
    with pytest.raises(ConfigError, match=r"^\$HARNESS_ALLOW_WRITES would let POST /a through"):
        load_profile("prod", profiles, environ={"HARNESS_ALLOW_WRITES": "POST /a"}, declared={})
    profiles.write_text('[prod]\nbase_url = "https://api.example.com"\nallow_writes = ["/login"]\n')
    with pytest.raises(ConfigError, match=r'allow_writes: .* write it as "METHOD /path"'):
        load_profile("prod", profiles, environ={}, declared={})
