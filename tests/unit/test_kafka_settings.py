"""Kafka's pure parts: the profile's bus fields and their errors, the client configuration
(credentials from the environment only), the Confluent wire format, the transport's record
(key, headers) and the per-test event timeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fixtures.kinds import NOTIFICATIONS, TOKENS, USERS
from harness.config import ConfigError, Profile, load_profile
from harness.events.contracts import decode_wire, encode_wire
from harness.events.kafka import KafkaTransport, client_config
from harness.events.stream import Delivery, Event, EventStream, build_event
from harness.reporting.events import render_timeline

DECLARED = {s.name: s for s in (USERS, TOKENS, NOTIFICATIONS)}

KAFKA = """
[staging]
base_url = "https://api.staging.example.com"
users_table = "u"
tokens_table = "t"
notifications_table = "n"
events_bus = "kafka"
kafka_bootstrap_servers = "b-1.example:9096,b-2.example:9096"
kafka_topic = "user-events"
kafka_consumer_group = "notifications-processor"
kafka_security_protocol = "SASL_SSL"
kafka_sasl_mechanism = "SCRAM-SHA-512"
schema_registry_url = "https://registry.example"
"""


def load(path: Path, environ: dict[str, str] | None = None) -> Profile:
    return load_profile("staging", path, environ=environ or {}, declared=DECLARED)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "environments.toml"
    path.write_text(text)
    return path


def test_kafka_fields_and_sasl_credentials_from_the_environment(tmp_path: Path) -> None:
    environ = {"HARNESS_KAFKA_SASL_USERNAME": "svc", "HARNESS_KAFKA_SASL_PASSWORD": "s3cret"}
    profile = load(write(tmp_path, KAFKA), environ)
    assert profile.events_bus == "kafka"
    config = client_config(profile, environ)
    config.pop("logger")
    assert config == {
        "bootstrap.servers": "b-1.example:9096,b-2.example:9096",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "s3cret",
    }
    assert "sasl.username" not in client_config(profile, {})


def test_the_bus_is_sns_unless_said_and_overridable(tmp_path: Path) -> None:
    path = write(tmp_path, KAFKA.replace('events_bus = "kafka"\n', ""))
    assert load(path).events_bus == "sns"
    assert load(path, {"HARNESS_EVENTS_BUS": "KAFKA"}).events_bus == "kafka"


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("kafka_sasl_password", "HARNESS_KAFKA_SASL_PASSWORD"),
        ("kafka_sasl_username", "HARNESS_KAFKA_SASL_USERNAME"),
        ("schema_registry_password", "HARNESS_SCHEMA_REGISTRY_PASSWORD"),
        ("schema_registry_user", "HARNESS_SCHEMA_REGISTRY_USER"),
    ],
)
def test_credentials_in_the_file_are_refused_naming_the_variable(
    tmp_path: Path, field: str, variable: str
) -> None:
    with pytest.raises(
        ConfigError, match=rf"{field}: credentials never go in this file.*{variable}"
    ):
        load(write(tmp_path, KAFKA + f'{field} = "x"\n'))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('events_bus = "kafka"', 'events_bus = "rabbit"'), "events_bus must be one of sns, kafka"),
        (('kafka_topic = "user-events"', ""), "no kafka_topic: set kafka_topic"),
    ],
)
def test_bad_kafka_settings_name_the_fix(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, KAFKA.replace(*change)))


def test_wire_format_round_trip_and_plain_json() -> None:
    body = b'{"type":"user.created"}'
    assert decode_wire(encode_wire(42, body)) == (42, body)
    assert decode_wire(body) == (None, body)
    assert decode_wire(b"") == (None, b"")


def test_a_published_record_is_keyed_by_uid_and_carries_type_version_namespace() -> None:
    transport = KafkaTransport.__new__(KafkaTransport)  # the record only: no cluster
    transport.namespace, transport.registry_url = "itest-20260101t000000-abcd-main", ""
    event = build_event("user.created", {"uid": 17, "email": "e", "name": "n"})
    key, value, headers = transport._record(json.dumps(event), {"type": "user.created"})
    assert key == "17"
    assert json.loads(value) == event
    assert dict(headers) == {
        "type": b"user.created",
        "version": b"1",
        "harness-namespace": b"itest-20260101t000000-abcd-main",
    }


class _Nothing:
    def receive(self, wait_seconds: int) -> list[Delivery]:
        return []

    def publish(self, body: str, attributes: Any) -> str:
        return ""

    def deliver_to_consumer(self, body: str, attributes: Any, delay: int = 0) -> str:
        return ""


class _Lenient:
    def validate(self, event: Any, schema_id: int | None = None) -> Any:
        return event


def test_the_namespace_header_keeps_a_record_whose_body_does_not_name_it() -> None:
    stream = EventStream(_Nothing(), _Lenient(), keep="itest-ns")  # type: ignore[arg-type]
    body = json.dumps(build_event("user.created", {"uid": 3}))
    kept = stream.ingest(
        Delivery(body, {"harness-namespace": "itest-ns", "kafka.key": "3"}, received_at=1.0)
    )
    assert kept is not None and kept.keys == {"3"}
    assert stream.ingest(Delivery(body, {"kafka.key": "3"}, received_at=1.0)) is None
    assert stream.dropped == 1


def test_the_timeline_lists_what_a_test_published_and_saw() -> None:
    seen = Event(
        "{}",
        {
            "kafka.topic": "topic",
            "kafka.partition": "2",
            "kafka.offset": "9",
            "kafka.schema_id": "5",
            "kafka.key": "3",
        },
        received_at=0.0,
        payload={"type": "user.created", "version": 1, "data": {"uid": 3}},
    )
    text = render_timeline(
        [
            {
                "t": 0.0,
                "action": "published",
                "type": "user.created",
                "version": 1,
                "key": "3",
                "where": "topic-2@9",
                "latency": None,
            },
            {
                "t": 0.012,
                "action": "saw",
                "type": seen.type,
                "version": 1,
                "schema_id": 5,
                "key": "3",
                "where": seen.where,
                "latency": 0.012,
                "violation": "$.data.uid",
            },
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["t+s", "what", "type", "key", "schema", "where", "latency"]
    assert "published" in lines[1] and "topic-2@9" in lines[1]
    assert "saw [contract violation at $.data.uid]" in lines[2]
    # one `where` format for what the test wrote and what it saw: topic-partition@offset
    assert "v1 (id 5)" in lines[2] and "topic-2@9" in lines[2] and "12 ms" in lines[2]
