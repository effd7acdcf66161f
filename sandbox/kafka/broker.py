"""A single-node Apache Kafka broker in KRaft mode, in a temporary folder, for one sandbox.

Owns: the broker's configuration (one node that is both broker and controller, on two free
loopback ports; internal topics with one replica and one partition so the first consumer
group starts at once; no automatic topic creation, so a misspelt topic fails loudly), the
storage format with a fresh cluster id, the JVM (bounded heap, client compiler only: it
starts in seconds and a sandbox never needs peak throughput), readiness (a metadata request
answered with this broker in it), topic creation, and the stop: SIGTERM, then SIGKILL after
a deadline, then the folder removed. Must never leave a JVM or its folder behind.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .jvm import (
    ClassArchive,
    JavaError,
    JavaProcess,
    free_port,
    make_workdir,
    port_open,
    run_java,
)

log = logging.getLogger("sandbox.kafka")
#: The launcher's progress lines (a training run is a long wait of a first start).
progress = logging.getLogger("sandbox.progress")
QUIET_CLIENT_LOG = logging.getLogger("sandbox.kafka.client")
QUIET_CLIENT_LOG.setLevel(logging.ERROR)

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = OUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
"""


class KafkaError(JavaError):
    """The broker could not be started or could not create a topic."""


def random_cluster_id() -> str:
    """What ``kafka-storage random-uuid`` prints: 16 random bytes, base64url, no padding."""
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka refuses ids that look like an option
            return text


def jvm_options(heap_mb: int) -> list[str]:
    return [
        f"-Xmx{heap_mb}m",
        "-Xms32m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:-UsePerfData",  # no /tmp/hsperfdata_<user> left behind
        "-Djava.awt.headless=true",
    ]


class KafkaBroker:
    """``start()`` formats and spawns, ``wait_ready()`` waits; ``stop()`` always."""

    def __init__(
        self,
        classpath: str,
        host: str = "127.0.0.1",
        heap_mb: int = 256,
        port: int = 0,
        archives: Path | None = None,
        write_archives: bool = False,
    ) -> None:
        self.classpath = classpath
        # Class-data-sharing archives of the format tool and the broker (None: none), made
        # by a training run (``prepare_class_archives``) and mapped by every other run.
        self.archives = archives
        self.write_archives = write_archives
        self.host = host
        self.heap_mb = heap_mb
        self.requested_port = port
        self.port = 0
        self.controller_port = 0
        self.workdir: Path | None = None
        self.process: JavaProcess | None = None
        self.started_at = 0.0

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _properties(self, data: Path) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={self.host}:{self.controller_port}",
                f"listeners=PLAINTEXT://{self.host}:{self.port},"
                f"CONTROLLER://{self.host}:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={data}",
                "auto.create.topics.enable=false",
                "num.partitions=1",
                "default.replication.factor=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "share.coordinator.state.topic.num.partitions=1",
                "group.initial.rebalance.delay.ms=0",
                "num.network.threads=2",
                "num.io.threads=2",
                "background.threads=2",
                "num.recovery.threads.per.data.dir=1",
                "log.cleaner.threads=1",
                # The cleaner (compaction of the offsets topic) would take 128 MB of heap at
                # start for its dedupe buffer; a sandbox's few keys need far less.
                "log.cleaner.dedupe.buffer.size=8388608",
                "",
            ]
        )

    def start(self) -> None:
        """Format the storage and spawn the broker; returns without waiting for it."""
        self.started_at = time.monotonic()
        self.workdir = make_workdir("kafka")
        self.port = self.requested_port or free_port(self.host)
        self.controller_port = free_port(self.host)
        while self.controller_port == self.port:
            self.controller_port = free_port(self.host)
        data = self.workdir / "data"
        properties = self.workdir / "server.properties"
        properties.write_text(self._properties(data))
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(LOG4J2)
        common = [
            *jvm_options(self.heap_mb),
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            self.classpath,
        ]
        formatted = run_java(
            [
                *common,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                random_cluster_id(),
                "--config",
                str(properties),
                "--standalone",
            ],
            self.workdir,
            timeout=60,
            archive=ClassArchive("kafka-storage-format", self.archives, self.write_archives),
        )
        if formatted.returncode != 0:
            lines = (formatted.stdout + formatted.stderr).strip().splitlines()
            raise KafkaError(
                "formatting the Kafka storage failed: "
                + (lines[-1] if lines else f"exit {formatted.returncode}")
            )
        self.process = JavaProcess(
            "kafka",
            [*common, "kafka.Kafka", str(properties)],
            self.workdir,
            ClassArchive("kafka-broker", self.archives, self.write_archives),
        )
        self.process.start()
        log.info(
            "kafka broker pid %s starting on %s (controller %s) in %s",
            self.process.pid,
            self.bootstrap_servers,
            self.controller_port,
            self.workdir,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until a metadata request names this broker; KafkaError if it dies or is late."""
        from confluent_kafka.admin import AdminClient

        assert self.process is not None
        deadline = time.monotonic() + timeout
        # The port first, so the client does not log refused connections while the JVM boots.
        while not port_open(self.host, self.port):
            self._check_alive(deadline)
            time.sleep(0.05)
        admin = AdminClient(self.client_config())
        while True:
            self._check_alive(deadline)
            try:
                metadata = admin.list_topics(timeout=1.0)
            except Exception as exc:  # KafkaException: not answering yet
                log.debug("metadata not ready: %s", exc)
                continue
            if metadata.brokers:
                break
            time.sleep(0.05)
        log.info(
            "kafka broker ready on %s in %.2fs",
            self.bootstrap_servers,
            time.monotonic() - self.started_at,
        )

    def _check_alive(self, deadline: float) -> None:
        assert self.process is not None
        if not self.process.running():
            raise KafkaError(
                f"the Kafka broker (port {self.port}, controller port {self.controller_port}) "
                "exited during start-up: " + self.process.failure("no error in its log")
            )
        if time.monotonic() > deadline:
            raise KafkaError(
                f"the Kafka broker did not answer on {self.bootstrap_servers} in time: "
                + self.process.failure("no error in its log")
            )

    def client_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap_servers, "client.id": "sandbox-launcher"}

    def create_topic(self, name: str, partitions: int, timeout: float = 20.0) -> None:
        """Create ``name`` (already there is fine) and wait until every partition has a leader."""
        from confluent_kafka import KafkaError as ClientError
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(self.client_config())
        future = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            request_timeout=timeout,
        )[name]
        try:
            future.result(timeout)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (
                isinstance(error, ClientError) and error.code() == ClientError.TOPIC_ALREADY_EXISTS
            ):
                raise KafkaError(f"cannot create the Kafka topic {name!r}: {exc}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            topic = admin.list_topics(topic=name, timeout=2.0).topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) == partitions
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                return
            time.sleep(0.05)
        raise KafkaError(f"the Kafka topic {name!r} had no leader for every partition in time")

    def warm_up_producer_ids(self, timeout: float = 20.0) -> None:
        """Load the transaction coordinator now, not on the service's first publish.

        An idempotent producer's first request for a producer id makes the broker create and
        load its transaction-state topic, about a second on this broker. A transactional
        producer's ``init_transactions`` waits for exactly that, and leaves only its id
        (``sandbox-warm-up``) in that internal topic: no topic, group or record of its own.
        """
        from confluent_kafka import Producer

        started = time.monotonic()
        producer = Producer(
            {
                **self.client_config(),
                "transactional.id": "sandbox-warm-up",
                # "Coordinator load in progress" is what this waits out, not news.
                "logger": QUIET_CLIENT_LOG,
            }
        )
        try:
            producer.init_transactions(timeout)
        except Exception as exc:  # only slower first publishes follow; not worth failing for
            log.warning("warming up the transaction coordinator failed: %s", exc)
        else:
            log.info("transaction coordinator loaded in %.2fs", time.monotonic() - started)
        finally:
            producer.flush(1.0)

    def request_stop(self) -> None:
        if self.process is not None:
            self.process.request_stop()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the JVM (SIGTERM, SIGKILL after ``timeout``) and remove its folder."""
        if self.process is not None:
            self.process.stop(timeout)
            self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def prepare_class_archives(classpath: str, archives: Path) -> None:
    """Once per JDK: run a broker that writes the class archives every later start maps.

    A training run starts, answers a metadata request and stops; writing the archives at its
    exit takes a few seconds more, so its stop is given time.
    """
    if all(ClassArchive(n, archives).exists() for n in ("kafka-storage-format", "kafka-broker")):
        return
    progress.info("a training run of the Kafka broker writes its class archives (once)…")
    broker = KafkaBroker(classpath, archives=archives, write_archives=True)
    try:
        broker.start()
        broker.wait_ready(120.0)
    finally:
        broker.stop(timeout=120.0)
