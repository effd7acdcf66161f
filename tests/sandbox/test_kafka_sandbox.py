"""The sandbox on Kafka (``--bus kafka``), end to end against a real broker and registry.

No mocks: ``python -m harness.sandbox --bus kafka`` runs as a subprocess with a real Apache
Kafka broker and Apicurio Registry (JVMs from Maven Central jars); the topic is read with a
confluent-kafka consumer on manually assigned partitions (no group, no commit), the
notifications table with boto3 against the emulator, and the JVMs' fate from /proc.

Without ``java`` the module is skipped with one line saying what to install, except under
``CI=true``, where it must run (and fails instead).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
import requests
from launching import (
    EXPORT_NAMES,
    REPO,
    LaunchedSandbox,
    launch,
    read_until_ready,
    start_process,
)

pytestmark = pytest.mark.e2e
T = TypeVar("T")

INSTALL = (
    "the Kafka sandbox needs a Java 17+ runtime and Maven "
    "(e.g. `apt-get install openjdk-17-jre-headless maven`)"
)
if shutil.which("java") is None and os.environ.get("CI") != "true":
    pytest.skip(f"java not found: {INSTALL}", allow_module_level=True)

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

START_DEADLINE_S = 90.0


def eventually(check: Callable[[], T], deadline_s: float = 15.0, every: float = 0.1) -> T:
    end = time.monotonic() + deadline_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {deadline_s}s; last: {result!r}")
        time.sleep(every)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def processes_using(path: str) -> list[int]:
    """Live processes whose command line names ``path`` (a JVM's folder, server.properties)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if path.encode() in (proc / "cmdline").read_bytes() and alive(int(proc.name)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def jvms(stderr: str) -> dict[str, tuple[int, str]]:
    """``{"kafka broker": (pid, folder), "schema registry": (pid, folder)}`` from the log."""
    found = {}
    for name in ("kafka broker", "schema registry"):
        match = re.search(
            rf"{name} pid (\d+) starting on \S+ (?:\(controller \d+\) )?in (\S+)", stderr
        )
        if match:
            found[name] = (int(match.group(1)), match.group(2))
    return found


def ensure_jars() -> None:
    """Fetch the jars before the launch, so its start deadline covers the start alone."""
    from harness.sandbox.kafka import jars

    try:
        jars.broker_classpath()
        jars.registry_jar()
    except jars.JavaError as exc:
        pytest.fail(f"{exc} ({INSTALL})", pytrace=False)


@pytest.fixture(scope="module")
def kafka_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedSandbox]:
    ensure_jars()
    launched = launch(
        ["--quiet", "--bus", "kafka"], tmp_path_factory.mktemp("kafka-sandbox"), START_DEADLINE_S
    )
    try:
        yield launched
    finally:
        launched.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def exports(kafka_sandbox: LaunchedSandbox) -> dict[str, str]:
    return kafka_sandbox.exports


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["X-Harness-Run"] = "tests-kafka-sandbox"
        yield s


def sign_up(http: requests.Session, base: str) -> tuple[int, dict[str, str], str]:
    email = f"kafka-{uuid.uuid4().hex[:12]}@sandbox.example.test"
    created = http.post(
        f"{base}/users", json={"email": email, "name": "Kafka", "password": "e2e-password"}
    )
    assert created.status_code == 201, created.text
    login = http.post(f"{base}/login", json={"email": email, "password": "e2e-password"})
    assert login.status_code == 200, login.text
    uid = int(login.json()["uid"])
    return uid, {"uid": str(uid), "token": login.json()["token"]}, email


def records_with_key(exports: dict[str, str], key: bytes, count: int) -> list[Any]:
    """The first ``count`` records keyed ``key``, read from offset 0 of every partition with
    manual assignment: no group joins and nothing is committed."""
    topic = exports["HARNESS_KAFKA_TOPIC"]
    bootstrap = exports["HARNESS_KAFKA_BOOTSTRAP_SERVERS"]
    partitions = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=5)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "never-joined",  # required by the client; assign() never uses it
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions.topics[topic].partitions])
        found: list[Any] = []
        deadline = time.monotonic() + 15
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None and message.key() == key:
                found.append(message)
        return found
    finally:
        consumer.close()


def registry_schema(exports: dict[str, str], schema_id: int) -> dict[str, Any]:
    url = f"{exports['HARNESS_SCHEMA_REGISTRY_URL']}/schemas/ids/{schema_id}"
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200, answer.text
    return dict(json.loads(answer.json()["schema"]))


def decode(value: bytes) -> tuple[int, dict[str, Any]]:
    """(schema id, envelope) of a Confluent wire-format value."""
    magic, schema_id = struct.unpack(">bI", value[:5])
    assert magic == 0, value[:16]
    return schema_id, json.loads(value[5:])


def notifications(exports: dict[str, str], uid: int) -> list[dict[str, Any]]:
    db = boto3.session.Session(
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
        region_name=exports["HARNESS_AWS_REGION"],
    ).client("dynamodb", endpoint_url=exports["HARNESS_AWS_ENDPOINT_URL"])
    items: list[dict[str, Any]] = db.query(
        TableName=exports["HARNESS_NOTIFICATIONS_TABLE"],
        KeyConditionExpression="Uid = :u",
        ExpressionAttributeValues={":u": {"N": str(uid)}},
        ConsistentRead=True,
    )["Items"]
    return items


# --- the running sandbox --------------------------------------------------------------


def test_exports_name_the_broker_topic_group_and_registry(
    kafka_sandbox: LaunchedSandbox, exports: dict[str, str]
) -> None:
    assert kafka_sandbox.export_order == EXPORT_NAMES
    assert exports["HARNESS_EVENTS_BUS"] == "kafka"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", exports["HARNESS_KAFKA_BOOTSTRAP_SERVERS"])
    assert exports["HARNESS_KAFKA_TOPIC"] == "sandbox-user-events"
    assert exports["HARNESS_KAFKA_CONSUMER_GROUP"] == "sandbox-notifications-processor"
    assert re.fullmatch(
        r"http://127\.0\.0\.1:\d+/apis/ccompat/v7", exports["HARNESS_SCHEMA_REGISTRY_URL"]
    )
    # Not this bus: the SNS topic and SQS queue are not what the service uses here.
    assert exports["HARNESS_EVENTS_TOPIC_ARN"] == exports["HARNESS_PROCESSOR_QUEUE_URL"] == ""
    # The contracts are registered as <type>-value, version N being contract vN.
    for event_type in ("user.created", "user.deleted"):
        subject = f"{exports['HARNESS_SCHEMA_REGISTRY_URL']}/subjects/{event_type}-value"
        entry = requests.get(f"{subject}/versions/1", timeout=5).json()
        contract = Path(exports["HARNESS_CONTRACTS_DIR"]) / event_type / "v1.json"
        assert json.loads(entry["schema"]) == json.loads(contract.read_text())


def test_a_kafka_start_says_each_step_on_stderr(kafka_sandbox: LaunchedSandbox) -> None:
    """A Kafka start takes seconds (a minute the first time): the user sees each step. The
    jars are fetched before the launch here (``ensure_jars``), so no fetch is among them."""
    lines = [
        line for line in kafka_sandbox.stderr().splitlines() if line.startswith("sandbox progress")
    ]
    steps = [re.sub(r"^sandbox progress: \[\d+\.\d s\] ", "", line) for line in lines]
    assert all(step != line for step, line in zip(steps, lines, strict=True)), lines
    assert steps[:-1] == [
        "starting the schema registry (a JVM)…",
        "starting the Kafka broker (a JVM)…",
        "starting the AWS emulator…",
        "creating the tables, topic and queue…",
        "starting the service…",
        "waiting for the Kafka broker…",
        "creating the topic sandbox-user-events, starting its consumer…",
        "waiting for the schema registry…",
        "registering the event schemas…",
        "waiting for the consumer's partitions…",
        "signing up 4 smoke account(s)…",
    ]
    assert re.fullmatch(r"ready in \d+\.\d s", steps[-1]), steps


def test_signup_and_delete_travel_the_topic_and_drive_the_notification(
    exports: dict[str, str], http: requests.Session
) -> None:
    base = exports["HARNESS_BASE_URL"]
    uid, auth, email = sign_up(http, base)

    (created,) = records_with_key(exports, str(uid).encode(), 1)
    assert dict(created.headers()) == {"type": b"user.created", "version": b"1"}
    schema_id, envelope = decode(created.value())
    assert envelope["type"] == "user.created" and envelope["version"] == 1
    assert envelope["data"] == {"uid": uid, "email": email, "name": "Kafka"}
    assert registry_schema(exports, schema_id)["title"] == "user.created v1"

    welcome = eventually(lambda: notifications(exports, uid))
    assert [item["NotificationId"]["S"] for item in welcome] == ["welcome"]

    assert http.delete(f"{base}/users/{uid}", headers=auth).status_code == 204
    _, deleted = records_with_key(exports, str(uid).encode(), 2)
    assert deleted.partition() == created.partition()  # same key, same partition: in order
    assert dict(deleted.headers()) == {"type": b"user.deleted", "version": b"1"}
    schema_id, envelope = decode(deleted.value())
    assert envelope["data"] == {"uid": uid, "email": email}
    assert registry_schema(exports, schema_id)["title"] == "user.deleted v1"
    eventually(lambda: notifications(exports, uid) == [])


def test_the_processor_commits_and_is_the_only_group(exports: dict[str, str]) -> None:
    """What a harness-side reader relies on: the service's group commits what it processed
    (its lag can be read), and reading by assignment, as above, joined no group."""
    bootstrap = exports["HARNESS_KAFKA_BOOTSTRAP_SERVERS"]
    group = exports["HARNESS_KAFKA_CONSUMER_GROUP"]
    topic = exports["HARNESS_KAFKA_TOPIC"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups().result(10)
    assert [g.group_id for g in listed.valid] == [group]

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = admin.list_topics(topic, timeout=5).topics[topic].partitions

        def lag() -> int:
            wanted = [TopicPartition(topic, p) for p in partitions]
            committed = {tp.partition: tp.offset for tp in consumer.committed(wanted, 10)}
            total = 0
            for p in partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), 5)
                total += high - max(committed[p], 0)
            return total

        eventually(lambda: lag() == 0)
    finally:
        consumer.close()


# --- lifecycle ------------------------------------------------------------------------


def test_sigterm_stops_both_jvms_and_removes_their_folders(
    kafka_sandbox: LaunchedSandbox,
) -> None:
    """Last of the tests on the module's sandbox: it stops it (the fixture's stop is then a
    no-op), so that the launches below do not share the machine with its JVMs."""
    started = jvms(kafka_sandbox.stderr())
    assert set(started) == {"kafka broker", "schema registry"}
    for pid, folder in started.values():
        assert alive(pid) and Path(folder).is_dir()
    assert kafka_sandbox.stop(signal.SIGTERM) == 0
    for pid, folder in started.values():
        assert not alive(pid)
        assert processes_using(folder) == []
        assert not Path(folder).exists()
    assert "Traceback" not in kafka_sandbox.stderr()


def _launch_without_registry(log_dir: Path) -> LaunchedSandbox:
    return launch(["--quiet", "--bus", "kafka", "--no-schema-registry"], log_dir, START_DEADLINE_S)


def test_without_a_registry_values_are_plain_json_and_a_killed_sandbox_takes_its_broker(
    http: requests.Session, tmp_path: Path
) -> None:
    ensure_jars()
    launched = _launch_without_registry(tmp_path)
    assert launched.exports["HARNESS_SCHEMA_REGISTRY_URL"] == ""
    uid, _, _ = sign_up(http, launched.base_url)
    (created,) = records_with_key(launched.exports, str(uid).encode(), 1)
    assert json.loads(created.value())["data"]["uid"] == uid  # no wire-format header

    ((pid, folder),) = jvms(launched.stderr()).values()
    assert alive(pid) and processes_using(folder) == [pid]
    launched.stop(signal.SIGKILL)
    eventually(lambda: processes_using(folder) == [], 20.0)
    # Its folder outlives it (nobody was left to remove it); the next start sweeps it.
    from harness.sandbox.kafka.jvm import sweep_workdirs

    sweep_workdirs("kafka")
    assert not Path(folder).exists()


PARENT = textwrap.dedent(
    """
    import ctypes, signal, subprocess, sys, time

    def bind():
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # as `harness env up` does

    child = subprocess.Popen(
        [sys.executable, "-m", "harness.sandbox", *sys.argv[1:]],
        stdout=sys.stdout, stderr=sys.stderr, preexec_fn=bind,
    )
    child.wait()
    """
)


def test_killed_parent_stops_the_sandbox_and_its_broker(tmp_path: Path) -> None:
    ensure_jars()
    stderr_path = tmp_path / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        parent = subprocess.Popen(
            [sys.executable, "-c", PARENT, "--quiet", "--bus", "kafka", "--no-schema-registry"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            bufsize=0,
        )
    try:
        _, ready = read_until_ready(parent, START_DEADLINE_S)
        assert ready is not None, stderr_path.read_text()
        sandbox_pid = int(ready.split("pid ")[1].split(";")[0])
        ((pid, folder),) = jvms(stderr_path.read_text()).values()
        assert alive(pid)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    # The kernel sends the sandbox SIGTERM; it stops in order: JVM gone, folder removed.
    eventually(lambda: not alive(sandbox_pid), 20.0)
    assert not alive(pid)
    assert processes_using(folder) == []
    assert not Path(folder).exists(), stderr_path.read_text()


def test_failed_start_leaves_no_jvm_or_folder(tmp_path: Path) -> None:
    ensure_jars()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, stderr_path = start_process(
            ["--quiet", "--bus", "kafka", "--no-schema-registry", "--kafka-port", str(port)],
            tmp_path,
        )
        try:
            assert proc.wait(START_DEADLINE_S) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            out = proc.stdout.read().decode()
            proc.stdout.close()
    err = stderr_path.read_text()
    assert "export " not in out, out
    (message,) = [line for line in err.splitlines() if line.startswith("sandbox: ")]
    assert f"port {port}" in message and "Address already in use" in message, message
    ((pid, folder),) = jvms(err).values()
    assert not alive(pid) and not Path(folder).exists()
    assert "Traceback" not in err
