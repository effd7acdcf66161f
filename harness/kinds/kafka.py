"""The ``kafka_group`` and ``kafka_topic`` kinds: consumer groups and topics a run left behind.

The harness's own reading leaves nothing on the cluster (manual assignment, no commits,
:mod:`harness.events.kafka`), but a test — or a crashed run, or an adapter — may create a
group (``<namespace>-events``, say) or a topic whose name carries the namespace. These kinds
let the residue check and the sweeper see and remove them: ``find(prefix)`` lists the
cluster's groups or topics whose name starts with the prefix (one AdminClient listing: cheap),
``marker`` is the name, ``delete`` deletes by name. Enabled only on ``events_bus = "kafka"``.
Never touches the service's own group or topic (``kafka_consumer_group`` / ``kafka_topic``),
whatever the gate says, nor a name without a harness namespace (the gate's job).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.cleanup.ledger import OwnershipError
from harness.config import ConfigError
from harness.kinds.base import Found, Kind, Outcome

TIMEOUT = 15.0


class _KafkaKind(Kind):
    #: A name-prefix listing of the cluster's groups/topics: O(the cluster's list), one call.
    find_is_cheap = True
    what = ""

    @classmethod
    def enabled(cls, profile: Any) -> bool:
        return profile.events_bus == "kafka" and bool(profile.kafka_bootstrap_servers)

    _admin: Any = None

    def admin(self) -> Any:
        """One AdminClient per kind, kept: a client dropped while its request is in flight
        answers with an empty listing."""
        if self._admin is None:
            self._admin = self._make_admin()
        return self._admin

    def _make_admin(self) -> Any:
        from harness.events.kafka import KafkaUnavailable, client_config, require_client

        try:
            require_client()
        except KafkaUnavailable as error:
            raise ConfigError(str(error)) from None
        from confluent_kafka.admin import AdminClient

        return AdminClient(client_config(self.profile))

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        name = ids.get("name")
        return str(name) if name else None

    def service_owned(self) -> str:
        raise NotImplementedError

    def _refuse_service_owned(self, name: str) -> None:
        if name and name == self.service_owned():
            raise OwnershipError(f"refusing to delete {self.what} {name!r}: it is the service's")

    def names(self) -> list[str]:
        raise NotImplementedError

    def find(self, prefix: str) -> list[Found]:
        service = self.service_owned()
        return [
            Found(kind=self.name, ids={"name": name}, summary=f"{self.what} {name}", marker=name)
            for name in sorted(self.names())
            if name.startswith(prefix) and name != service
        ]


def _code(error: Any) -> str:
    inner = error.args[0] if getattr(error, "args", None) else None
    name = getattr(inner, "name", None)
    return str(name()) if callable(name) else ""


class KafkaGroupKind(_KafkaKind):
    name = "kafka_group"
    what = "Kafka consumer group"
    sweep_order = 40

    def service_owned(self) -> str:
        return str(self.profile.kafka_consumer_group)

    def names(self) -> list[str]:
        listing = self.admin().list_consumer_groups(request_timeout=TIMEOUT).result()
        return [group.group_id for group in listing.valid]

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        name = str(ids.get("name", ""))
        self._refuse_service_owned(name)
        futures = self.admin().delete_consumer_groups([name], request_timeout=TIMEOUT)
        try:
            futures[name].result()
        except Exception as error:
            if _code(error) in ("GROUP_ID_NOT_FOUND", "_NOENT"):
                return "absent"
            raise
        return "deleted"


class KafkaTopicKind(_KafkaKind):
    name = "kafka_topic"
    what = "Kafka topic"
    sweep_order = 45

    def service_owned(self) -> str:
        return str(self.profile.kafka_topic)

    def names(self) -> list[str]:
        return list(self.admin().list_topics(timeout=TIMEOUT).topics)

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        name = str(ids.get("name", ""))
        self._refuse_service_owned(name)
        futures = self.admin().delete_topics([name], operation_timeout=TIMEOUT)
        try:
            futures[name].result()
        except Exception as error:
            if _code(error) == "UNKNOWN_TOPIC_OR_PART":
                return "absent"
            raise
        return "deleted"
