"""Unit tests of the reference service's routes, validation and processor.

Chalice's test client drives the app in-process; moto's ``mock_aws`` stands in for AWS.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

import app as service_app
import boto3
import pytest
from chalice.test import Client
from chalicelib import auth, events, passwords, processing, store

EMAIL = "Ada@Example.TEST"


def _json(resp: Any) -> Any:
    return json.loads(resp.body) if resp.body else None


def _post(client: Client, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.http.post(
        path, body=raw, headers={"Content-Type": "application/json", **(headers or {})}
    )


def _signup_login(client: Client, email: str = EMAIL) -> tuple[int, dict[str, str]]:
    created = _post(client, "/users", {"email": email, "name": "Ada", "password": "correct horse"})
    assert created.status_code == 201, created.body
    resp = _post(client, "/login", {"email": email, "password": "correct horse"})
    assert resp.status_code == 200, resp.body
    body = _json(resp)
    return body["uid"], {"uid": str(body["uid"]), "token": body["token"]}


@pytest.fixture
def client(service_env: dict[str, str]) -> Any:
    with Client(service_app.app) as c:
        yield c


def test_health_names_environment(client: Client) -> None:
    resp = client.http.get("/health")
    assert resp.status_code == 200
    assert _json(resp) == {"status": "ok", "environment": "unit", "version": service_app.VERSION}


def test_signup_returns_uid_derived_from_normalised_email(client: Client) -> None:
    resp = _post(client, "/users", {"email": EMAIL, "name": "Ada", "password": "longenough"})
    assert resp.status_code == 201
    assert _json(resp) == {"uid": store.uid_for("ada@example.test")}
    item = boto3.client("dynamodb").get_item(
        TableName="sandbox-users", Key={"Uid": {"N": str(store.uid_for(EMAIL))}}
    )["Item"]
    assert item["Email"]["S"] == "ada@example.test"
    assert item["PasswordHash"]["S"].startswith("scrypt$")
    assert "longenough" not in json.dumps(item)


def test_duplicate_email_is_409_case_insensitively(client: Client) -> None:
    _post(client, "/users", {"email": EMAIL, "name": "Ada", "password": "longenough"})
    resp = _post(client, "/users", {"email": EMAIL.lower(), "name": "B", "password": "longenough"})
    assert resp.status_code == 409
    assert _json(resp) == {"error": "Email already registered"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "A", "password": "longenough"}, "email"),
        ({"email": "not-an-email", "name": "A", "password": "longenough"}, "email"),
        ({"email": "a@b.test", "password": "longenough"}, "name"),
        ({"email": "a@b.test", "name": "   ", "password": "longenough"}, "name"),
        ({"email": "a@b.test", "name": "x" * 201, "password": "longenough"}, "name"),
        ({"email": "a@b.test", "name": "A", "password": "short"}, "password"),
        ({"email": "a@b.test", "name": "A", "password": 12345678}, "password"),
        ({"email": "a@b.test", "name": "A", "password": "longenough", "admin": True}, "admin"),
        ("{not json", "body"),
        ("[1, 2]", "body"),
        ("", "body"),
        (json.dumps({"email": "a@b.test", "name": "A", "password": "p" * 17000}), "body"),
    ],
)
def test_invalid_signup_is_400_naming_the_field(client: Client, body: Any, field: str) -> None:
    resp = _post(client, "/users", body)
    assert resp.status_code == 400, resp.body
    answer = _json(resp)
    assert answer["field"] == field
    assert field in answer["error"].lower() or field == "body"


def test_non_json_content_type_is_400_not_415(client: Client) -> None:
    resp = client.http.post("/users", body="email=a", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 400
    assert _json(resp)["field"] == "body"


def test_login_issues_token_with_numeric_ttl_30_minutes_ahead(client: Client) -> None:
    uid, headers = _signup_login(client)
    item = boto3.client("dynamodb").get_item(
        TableName="sandbox-tokens", Key={"Uid": {"N": str(uid)}}
    )["Item"]
    assert item["Token"]["S"] == headers["token"]
    ttl = int(item["TimeToLive"]["N"])
    assert 29 * 60 < ttl - time.time() <= 30 * 60


def test_bad_credentials_are_401_alike(client: Client) -> None:
    _signup_login(client)
    wrong = _post(client, "/login", {"email": EMAIL, "password": "wrong password"})
    unknown = _post(client, "/login", {"email": "nobody@example.test", "password": "whatever1"})
    assert wrong.status_code == unknown.status_code == 401
    assert _json(wrong) == _json(unknown) == {"error": "Invalid credentials"}


def test_self_read_update_and_other_uid_forbidden(client: Client) -> None:
    uid, headers = _signup_login(client)
    resp = client.http.get(f"/users/{uid}", headers=headers)
    assert resp.status_code == 200
    assert _json(resp)["email"] == "ada@example.test"
    assert set(_json(resp)) == {"uid", "email", "name", "created_at"}

    resp = client.http.patch(
        f"/users/{uid}",
        body=json.dumps({"name": "Ada L."}),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 200 and _json(resp)["name"] == "Ada L."

    other_uid, _ = _signup_login(client, "grace@example.test")
    for method in ("get", "delete"):
        resp = getattr(client.http, method)(f"/users/{other_uid}", headers=headers)
        assert resp.status_code == 403
        assert _json(resp) == {"error": "Not authorized"}
    assert client.http.get(f"/users/{other_uid}/notifications", headers=headers).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "new@example.test"}, "email"),
        ({}, "body"),
        ({"nick": "x"}, "nick"),
        ({"password": "short"}, "password"),
    ],
)
def test_patch_rejects_bad_changes(client: Client, body: Any, field: str) -> None:
    uid, headers = _signup_login(client)
    resp = client.http.patch(
        f"/users/{uid}",
        body=json.dumps(body),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert _json(resp)["field"] == field


@pytest.mark.parametrize(
    "headers",
    [{}, {"uid": "1"}, {"token": "t"}, {"uid": "abc", "token": "t"}, {"uid": "-5", "token": "t"}],
)
def test_missing_or_garbled_auth_headers_are_403(client: Client, headers: dict[str, str]) -> None:
    resp = client.http.get("/users/1", headers=headers)
    assert resp.status_code == 403
    assert _json(resp) == {"error": "Not authorized"}


def test_wrong_and_expired_tokens_are_403(client: Client) -> None:
    uid, headers = _signup_login(client)
    resp = client.http.get(f"/users/{uid}", headers={**headers, "token": headers["token"] + "x"})
    assert resp.status_code == 403
    store.put_token(uid, headers["token"], int(time.time()) - 1)
    assert client.http.get(f"/users/{uid}", headers=headers).status_code == 403


def test_legacy_string_ttl_still_checked(client: Client) -> None:
    uid, headers = _signup_login(client)
    boto3.client("dynamodb").put_item(
        TableName="sandbox-tokens",
        Item={
            "Uid": {"N": str(uid)},
            "Token": {"S": headers["token"]},
            "TimeToLive": {"S": str(int(time.time()) - 10)},
        },
    )
    assert client.http.get(f"/users/{uid}", headers=headers).status_code == 403


def test_logout_ends_the_session(client: Client) -> None:
    uid, headers = _signup_login(client)
    assert client.http.post("/logout", headers=headers).status_code == 204
    assert client.http.get(f"/users/{uid}", headers=headers).status_code == 403


def test_delete_removes_user_and_token(client: Client) -> None:
    uid, headers = _signup_login(client)
    assert client.http.delete(f"/users/{uid}", headers=headers).status_code == 204
    assert store.get_user(uid) is None
    assert store.get_token(uid) is None
    assert client.http.get(f"/users/{uid}", headers=headers).status_code == 403


def test_storage_error_is_500_not_403(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    uid, headers = _signup_login(client)
    monkeypatch.setenv("TOKEN_TABLE_NAME", "no-such-table")
    from chalicelib import settings

    settings.reset()
    resp = client.http.get(f"/users/{uid}", headers=headers)
    assert resp.status_code == 500
    assert _json(resp) == {"error": "Internal error"}


def test_events_published_match_contracts(client: Client, service_env: dict[str, str]) -> None:
    sqs = boto3.client("sqs")
    uid, headers = _signup_login(client)
    client.http.delete(f"/users/{uid}", headers=headers)
    got = sqs.receive_message(QueueUrl=service_env["QUEUE_URL"], MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in got.get("Messages", [])]
    assert [b["type"] for b in bodies] == ["user.created", "user.deleted"]
    for body in bodies:
        assert events.validate(body) is body
        assert body["data"]["uid"] == uid
        assert "password" not in json.dumps(body).lower()


def test_event_contracts_reject_bad_payloads() -> None:
    good = events.build("user.created", {"uid": 1, "email": "a@b.test", "name": "A"})
    assert events.validate(good) is good
    for bad in (
        {**good, "version": 2},
        {**good, "data": {"uid": 1, "email": "a@b.test"}},
        {**good, "data": {**good["data"], "password": "x"}},
        {**good, "id": "not-a-uuid"},
        {**good, "type": "user.exploded"},
    ):
        with pytest.raises(events.InvalidEvent):
            events.validate(bad)


def test_processor_welcomes_then_forgets(client: Client) -> None:
    uid, headers = _signup_login(client)
    created = events.build("user.created", {"uid": uid, "email": "ada@example.test", "name": "A"})
    sqs_event = client.events.generate_sqs_event(
        message_bodies=[json.dumps(created)], queue_name="sandbox-notifications-processor"
    )
    client.lambda_.invoke("process_user_events", sqs_event)
    resp = client.http.get(f"/users/{uid}/notifications", headers=headers)
    assert [n["kind"] for n in _json(resp)["notifications"]] == ["welcome"]

    client.http.delete(f"/users/{uid}", headers=headers)
    deleted = events.build("user.deleted", {"uid": uid, "email": "ada@example.test"})
    assert processing.handle_message(json.dumps(deleted)) == "removed 1"
    assert store.list_notifications(uid) == []
    # A late duplicate user.created must not resurrect the notification.
    assert processing.handle_message(json.dumps(created)) == "skipped (user gone)"
    assert store.list_notifications(uid) == []


def _kafka_event(*values: bytes) -> dict[str, Any]:
    """A Lambda Kafka event (self-managed shape) with these values on partition 0."""
    return {
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": "127.0.0.1:9092",
        "records": {
            "sandbox-user-events-0": [
                {
                    "topic": "sandbox-user-events",
                    "partition": 0,
                    "offset": offset,
                    "timestamp": 0,
                    "timestampType": "CREATE_TIME",
                    "key": base64.b64encode(b"1").decode(),
                    "value": base64.b64encode(value).decode(),
                    "headers": [{"type": list(b"user.created")}],
                }
                for offset, value in enumerate(values)
            ]
        },
    }


def test_kafka_values_decode_plain_and_wire_format() -> None:
    body = b'{"type":"user.created"}'
    assert events.decode_value(body) == body.decode()
    wire = struct.pack(">bI", 0, 7) + body
    assert events.decode_value(wire) == body.decode()
    records = events.kafka_records(_kafka_event(body, wire))
    assert [events.kafka_record_body(r) for r in records] == [body.decode()] * 2


def test_kafka_handler_welcomes_like_the_sqs_one(client: Client) -> None:
    uid, headers = _signup_login(client)
    created = events.build("user.created", {"uid": uid, "email": "ada@example.test", "name": "A"})
    value = json.dumps(created).encode()
    # Twice, plain and in the wire format: the second is a harmless duplicate.
    client.lambda_.invoke(
        "process_user_events_kafka",
        _kafka_event(value, struct.pack(">bI", 0, 1) + value),
    )
    resp = client.http.get(f"/users/{uid}/notifications", headers=headers)
    assert [n["kind"] for n in _json(resp)["notifications"]] == ["welcome"]


def test_kafka_bus_needs_its_settings(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import settings

    monkeypatch.setenv("EVENTS_BUS", "kafka")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(KeyError, match="KAFKA_BOOTSTRAP_SERVERS"):
        settings.Settings.from_environ()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("KAFKA_TOPIC", "t")
    monkeypatch.delenv("EVENTS_TOPIC_ARN", raising=False)
    configured = settings.Settings.from_environ()
    assert (configured.events_bus, configured.kafka_topic) == ("kafka", "t")
    monkeypatch.setenv("EVENTS_BUS", "carrier-pigeon")
    with pytest.raises(ValueError, match="EVENTS_BUS"):
        settings.Settings.from_environ()


def test_processor_drops_unprocessable_messages(service_env: dict[str, str]) -> None:
    assert processing.handle_message("not json") == "dropped"
    assert processing.handle_message(json.dumps({"type": "user.created", "version": 1})) == (
        "dropped"
    )


def test_password_hash_roundtrip_and_uid_parsing() -> None:
    stored = passwords.hash_password("s3cret-pass")
    assert passwords.verify_password("s3cret-pass", stored)
    assert not passwords.verify_password("s3cret-pasS", stored)
    assert not passwords.verify_password("x", "garbage")
    assert auth.parse_uid("42") == 42
    assert auth.parse_uid(str(2**53)) is None
    assert auth.parse_uid("0") is None


def test_token_and_password_checks_compare_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both verdicts come from ``hmac.compare_digest`` (time independent of where the inputs
    differ), not from ``==``: the spy answers the opposite of the truth, and the verdict
    follows the spy."""
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return not real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    expires = time.time() + 60
    assert not auth.token_valid(("tok-abc", int(expires)), "tok-abc")
    assert auth.token_valid(("tok-abc", int(expires)), "tok-abd")
    assert calls == [(b"tok-abc", b"tok-abc"), (b"tok-abc", b"tok-abd")]
    assert not auth.token_valid(("tok-abc", 1), "tok-abc")  # expired: never compared
    assert not auth.token_valid(None, "tok-abc")
    assert len(calls) == 2
    stored = passwords.hash_password("s3cret-pass")
    assert not passwords.verify_password("s3cret-pass", stored)
    assert len(calls) == 3 and len(calls[2][0]) == len(calls[2][1]) > 0
