"""The engine's Kafka kinds (harness/kinds/kafka.py) over an in-memory cluster admin that
answers as confluent-kafka's AdminClient does — futures per name, failing with the real
``KafkaException(KafkaError(code))`` — and records every request with its timeout: what
``find`` lists, what ``delete`` removes, and the second line behind the ownership gate: the
service's own consumer group and topic are never listed and never deleted."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, KafkaException

from harness.cleanup.ledger import OwnershipError
from harness.config import ConfigError, Profile
from harness.kinds.base import Found
from harness.kinds.kafka import TIMEOUT, KafkaGroupKind, KafkaTopicKind, _code

RUN = "itest-20261127t170000-abcd"
#: A team's own names that happen to start like the harness's (the gate alone cannot tell).
SERVICE_GROUP = "itest-orders-consumer"
SERVICE_TOPIC = "itest-orders"


class Future:
    def __init__(self, error: BaseException | None = None, value: Any = None) -> None:
        self.error = error
        self.value = value

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def kafka_error(code: int) -> KafkaException:
    return KafkaException(KafkaError(code))


class FakeAdmin:
    """Groups and topics by name; ``fail`` maps a name to the code its delete fails with."""

    def __init__(self, groups: list[str], topics: list[str]) -> None:
        self.groups = set(groups)
        self.topics = set(topics)
        self.fail: dict[str, int] = {}
        self.requests: list[tuple[str, Any, float | None]] = []

    def list_consumer_groups(self, request_timeout: float | None = None) -> Future:
        self.requests.append(("list_consumer_groups", None, request_timeout))
        listing = SimpleNamespace(
            valid=[SimpleNamespace(group_id=g) for g in self.groups], errors=[]
        )
        return Future(value=listing)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        self.requests.append(("list_topics", topic, timeout))
        return SimpleNamespace(topics={t: SimpleNamespace(topic=t) for t in self.topics})

    def _delete(self, names: list[str], store: set[str], missing: int) -> dict[str, Future]:
        futures = {}
        for name in names:
            if name in self.fail:
                futures[name] = Future(kafka_error(self.fail[name]))
            elif name in store:
                store.remove(name)
                futures[name] = Future()
            else:
                futures[name] = Future(kafka_error(missing))
        return futures

    def delete_consumer_groups(
        self, group_ids: list[str], request_timeout: float | None = None
    ) -> dict[str, Future]:
        self.requests.append(("delete_consumer_groups", list(group_ids), request_timeout))
        return self._delete(group_ids, self.groups, KafkaError.GROUP_ID_NOT_FOUND)

    def delete_topics(
        self, topics: list[str], operation_timeout: float | None = None
    ) -> dict[str, Future]:
        self.requests.append(("delete_topics", list(topics), operation_timeout))
        return self._delete(topics, self.topics, KafkaError.UNKNOWN_TOPIC_OR_PART)


def profile(**fields: Any) -> Profile:
    settings = {
        "events_bus": "kafka",
        "kafka_bootstrap_servers": "127.0.0.1:1",
        "kafka_topic": SERVICE_TOPIC,
        "kafka_consumer_group": SERVICE_GROUP,
        **fields,
    }
    return Profile(name="staging", **settings)


def kinds(admin: FakeAdmin) -> tuple[KafkaGroupKind, KafkaTopicKind]:
    groups, topics = (
        KafkaGroupKind(profile(), cast(Any, None)),
        KafkaTopicKind(profile(), cast(Any, None)),
    )
    groups._admin = topics._admin = admin
    return groups, topics


def found(kind: str, what: str, *names: str) -> list[Found]:
    return [Found(kind=kind, ids={"name": n}, summary=f"{what} {n}", marker=n) for n in names]


def test_enabled_only_on_the_kafka_bus_with_brokers() -> None:
    for kind in (KafkaGroupKind, KafkaTopicKind):
        assert kind.enabled(profile()) is True
        assert kind.enabled(profile(kafka_bootstrap_servers="")) is False
        assert kind.enabled(profile(events_bus="sns")) is False


def test_the_marker_is_the_name() -> None:
    groups, topics = kinds(FakeAdmin([], []))
    for kind in (groups, topics):
        assert kind.marker({"name": f"{RUN}-gw0-events"}) == f"{RUN}-gw0-events"
        assert kind.marker({}) is None and kind.marker({"name": ""}) is None


def test_the_services_own_names_come_from_the_profile() -> None:
    groups, topics = kinds(FakeAdmin([], []))
    assert groups.service_owned() == SERVICE_GROUP
    assert topics.service_owned() == SERVICE_TOPIC


def test_find_lists_by_prefix_sorted_and_never_the_services_own_group_or_topic() -> None:
    admin = FakeAdmin(
        groups=[f"{RUN}-gw1-events", SERVICE_GROUP, f"{RUN}-gw0-events", "orders-audit"],
        topics=[f"{RUN}-gw0-scratch", SERVICE_TOPIC, "itest-20261127t160000-zzzz-gw0-t"],
    )
    groups, topics = kinds(admin)
    assert groups.find("itest-") == found(
        "kafka_group", "Kafka consumer group", f"{RUN}-gw0-events", f"{RUN}-gw1-events"
    )
    assert topics.find("itest-") == found(
        "kafka_topic",
        "Kafka topic",
        "itest-20261127t160000-zzzz-gw0-t",
        f"{RUN}-gw0-scratch",
    )
    assert topics.find(RUN) == found("kafka_topic", "Kafka topic", f"{RUN}-gw0-scratch")
    assert ("list_consumer_groups", None, TIMEOUT) in admin.requests
    assert ("list_topics", None, TIMEOUT) in admin.requests


def test_delete_removes_a_group_or_topic_and_gone_is_absent() -> None:
    group, topic = f"{RUN}-gw0-events", f"{RUN}-gw0-scratch"
    admin = FakeAdmin(groups=[group, SERVICE_GROUP], topics=[topic, SERVICE_TOPIC])
    groups, topics = kinds(admin)
    assert groups.delete({"name": group}) == "deleted"
    assert topics.delete({"name": topic}) == "deleted"
    assert admin.groups == {SERVICE_GROUP} and admin.topics == {SERVICE_TOPIC}
    assert groups.delete({"name": group}) == "absent"
    assert topics.delete({"name": topic}) == "absent"
    assert admin.requests == [
        ("delete_consumer_groups", [group], TIMEOUT),
        ("delete_topics", [topic], TIMEOUT),
        ("delete_consumer_groups", [group], TIMEOUT),
        ("delete_topics", [topic], TIMEOUT),
    ]


def test_a_group_or_topic_the_broker_does_not_know_is_absent() -> None:
    admin = FakeAdmin(groups=[], topics=[])
    admin.fail[f"{RUN}-gw0-events"] = KafkaError._NOENT
    groups, topics = kinds(admin)
    assert groups.delete({"name": f"{RUN}-gw0-events"}) == "absent"
    assert groups.delete({}) == "absent"  # no name: asked for "", which is not there
    assert admin.requests[-1] == ("delete_consumer_groups", [""], TIMEOUT)
    assert topics.delete({}) == "absent"
    assert admin.requests[-1] == ("delete_topics", [""], TIMEOUT)


@pytest.mark.parametrize(
    ("which", "code"),
    [
        ("group", KafkaError.NON_EMPTY_GROUP),
        ("group", KafkaError.UNKNOWN_TOPIC_OR_PART),
        ("topic", KafkaError.TOPIC_AUTHORIZATION_FAILED),
        ("topic", KafkaError.GROUP_ID_NOT_FOUND),
        ("topic", KafkaError._NOENT),
    ],
)
def test_any_other_failure_of_a_delete_is_raised(which: str, code: int) -> None:
    name = f"{RUN}-gw0-x"
    admin = FakeAdmin(groups=[name], topics=[name])
    admin.fail[name] = code
    groups, topics = kinds(admin)
    with pytest.raises(KafkaException) as raised:
        (groups if which == "group" else topics).delete({"name": name})
    assert raised.value.args[0].code() == code


def test_the_services_own_group_and_topic_are_refused_without_asking_the_cluster() -> None:
    """The second line behind the gate: whatever the gate said."""
    admin = FakeAdmin(groups=[SERVICE_GROUP], topics=[SERVICE_TOPIC])
    groups, topics = kinds(admin)
    with pytest.raises(OwnershipError) as refused:
        groups.delete({"name": SERVICE_GROUP})
    assert str(refused.value) == (
        f"refusing to delete Kafka consumer group {SERVICE_GROUP!r}: it is the service's"
    )
    with pytest.raises(OwnershipError) as refused:
        topics.delete({"name": SERVICE_TOPIC})
    assert (
        str(refused.value)
        == f"refusing to delete Kafka topic {SERVICE_TOPIC!r}: it is the service's"
    )
    assert admin.requests == []
    assert admin.groups == {SERVICE_GROUP} and admin.topics == {SERVICE_TOPIC}


def test_a_profile_naming_no_service_group_refuses_nothing_for_it() -> None:
    admin = FakeAdmin(groups=[""], topics=[])
    groups = KafkaGroupKind(profile(kafka_consumer_group=""), cast(Any, None))
    groups._admin = admin
    assert groups.delete({"name": ""}) == "deleted"  # "" is not "the service's group"


def test_the_error_code_is_read_from_a_kafka_exception_only() -> None:
    assert _code(kafka_error(KafkaError.GROUP_ID_NOT_FOUND)) == "GROUP_ID_NOT_FOUND"
    assert _code(kafka_error(KafkaError._NOENT)) == "_NOENT"
    assert _code(KafkaException()) == ""
    assert _code(RuntimeError("GROUP_ID_NOT_FOUND")) == ""
    assert _code(RuntimeError(SimpleNamespace(name="GROUP_ID_NOT_FOUND"))) == ""  # not callable
    assert _code(cast(Any, object())) == ""  # no args at all


def test_one_admin_client_per_kind_built_from_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka.admin import AdminClient

    groups = KafkaGroupKind(profile(), cast(Any, None))
    admin = groups.admin()
    assert isinstance(admin, AdminClient)
    assert groups.admin() is admin  # kept: a dropped client loses its in-flight answer
    built: list[str] = []

    def make() -> str:
        built.append("client")
        return "client"

    topics = KafkaTopicKind(profile(), cast(Any, None))
    monkeypatch.setattr(topics, "_make_admin", make)
    assert topics.admin() == "client" and topics.admin() == "client" and built == ["client"]


def test_without_the_kafka_client_the_kind_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harness.events import kafka as events_kafka

    def missing() -> None:
        raise events_kafka.KafkaUnavailable("no client: pip install it")

    monkeypatch.setattr(events_kafka, "require_client", missing)
    with pytest.raises(ConfigError) as refused:
        KafkaTopicKind(profile(), cast(Any, None)).admin()
    assert str(refused.value) == "no client: pip install it"
