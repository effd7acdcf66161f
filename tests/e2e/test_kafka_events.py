"""The harness's events on Kafka, end to end against a real broker and schema registry.

One sandbox on ``--bus kafka`` (a real Apache Kafka broker in KRaft mode and Apicurio
Registry, started by the harness's own launcher) for the module. No mocks: the events suites
run on it unchanged through ``harness run``; two streams side by side each keep only their
own run's events; a crashed run's namespaced group and topic are found and removed by
``harness sweep`` while the service's own stay; the end-of-run wait holds until a consumer
group's lag is 0; a wire-format event that breaks its registry schema fails naming the field.

Without ``java`` the module is skipped with one line saying what to install, except under
``CI=true``, where it must run (and fails instead).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import Profile
from harness.events.contracts import Contracts, ContractViolation, encode_wire, registry_version
from harness.events.stream import EventStream, Expectations, LatencyRecorder, build_event
from harness.kinds.registry import load_profile
from harness.namespace import Namespace, RunId, worker_part
from harness.run.local_sandbox import LocalSandbox
from tests.e2e.test_environment_unchanged import harness_run

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
INSTALL = (
    "the Kafka sandbox needs a Java 17+ runtime and Maven "
    "(e.g. `apt-get install openjdk-17-jre-headless maven`)"
)
if shutil.which("java") is None and os.environ.get("CI") != "true":
    pytest.skip(f"java not found: {INSTALL}", allow_module_level=True)

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from harness.events.kafka import KafkaTransport, client_config  # noqa: E402
from harness.run.lifecycle import _wait_for_consumer_group  # noqa: E402


@pytest.fixture(scope="module")
def kafka_environ(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``os.environ`` plus a ``--bus kafka`` sandbox's exports (the sandbox stopped after)."""
    log = tmp_path_factory.mktemp("kafka-sandbox") / "sandbox.log"
    sandbox = LocalSandbox.start(log, ["--bus", "kafka"])
    try:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
        environ.update(sandbox.exports)
        environ["HARNESS_CONFIG"] = str(REPO / "environments.toml")
        environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        )
        assert environ["HARNESS_EVENTS_BUS"] == "kafka"
        yield environ
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def profile(kafka_environ: dict[str, str]) -> Profile:
    return load_profile("sandbox", REPO / "environments.toml", environ=kafka_environ)


@pytest.fixture(scope="module")
def admin(profile: Profile) -> AdminClient:
    return AdminClient(client_config(profile))


def groups(admin: AdminClient) -> set[str]:
    return {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}


def topics(admin: AdminClient) -> set[str]:
    return set(admin.list_topics(timeout=10).topics)


def committed(profile: Profile) -> int:
    """The service's group's committed offsets on its topic, summed."""
    consumer = Consumer({**client_config(profile), "group.id": profile.kafka_consumer_group})
    try:
        partitions = consumer.list_topics(profile.kafka_topic, timeout=10)
        wanted = [
            TopicPartition(profile.kafka_topic, p)
            for p in partitions.topics[profile.kafka_topic].partitions
        ]
        return sum(max(tp.offset, 0) for tp in consumer.committed(wanted, timeout=10))
    finally:
        consumer.close()


def fresh_namespace() -> Namespace:
    return Namespace(RunId.generate(), worker_part())


def test_events_suites_pass_on_kafka_and_leave_no_group_topic_or_offset(
    kafka_environ: dict[str, str], profile: Profile, admin: AdminClient, tmp_path: Path
) -> None:
    groups_before, topics_before = groups(admin), topics(admin)
    processed_before = committed(profile)
    html, summary = tmp_path / "report.html", tmp_path / "summary.md"
    report = harness_run(
        kafka_environ,
        tmp_path,
        "--suite",
        "all",
        "suites/events",
        "--html",
        str(html),
        "--summary",
        str(summary),
    )
    assert report["tests"]["failed"] == report["tests"]["error"] == 0
    assert report["tests"]["skipped"] == 0, "an events test skipped: not on Kafka?"
    assert report["tests"]["passed"] >= 8
    assert report["resources"]["leaked"] == 0
    assert set(report["event_latency"]) == {"user.created", "user.deleted"}
    assert set(report["events_seen"]) == {"user.created", "user.deleted"}
    # Each test's events as a timeline in the HTML report; per-type counts and p95 in Markdown.
    page = html.read_text()
    assert "harness-timeline" in page and "(id " in page
    assert re.search(r"sandbox-user-events-\d+@\d+", page)  # one `where` format: topic-p@offset
    assert "Events the tests saw" in summary.read_text()
    # The service's consumer really processed the run's events over Kafka ...
    assert committed(profile) > processed_before
    # ... and the harness's reading left no consumer group, topic or committed offset.
    assert groups(admin) == groups_before
    assert topics(admin) == topics_before


def test_two_concurrent_runs_pass_side_by_side(
    kafka_environ: dict[str, str], tmp_path: Path
) -> None:
    reports = [tmp_path / "a.json", tmp_path / "b.json"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "--report", str(report), "suites/events"],
            cwd=REPO,
            env={**kafka_environ, "HARNESS_STATE_DIR": str(tmp_path / f"state-{i}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, report in enumerate(reports)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-4000:]


def stream_for(profile: Profile, namespace: Namespace) -> tuple[KafkaTransport, EventStream]:
    transport = KafkaTransport(
        client_config(profile), profile.kafka_topic, str(namespace), profile.schema_registry_url
    )
    contracts = Contracts.for_registry_or_directory(profile.schema_registry_url)
    return transport, EventStream(transport, contracts, keep=str(namespace)).start()


def test_two_streams_each_keep_only_their_own_events(profile: Profile) -> None:
    spaces = [fresh_namespace(), fresh_namespace()]
    opened = [stream_for(profile, ns) for ns in spaces]
    try:
        views = [Expectations(stream, lambda: set(), LatencyRecorder()) for _, stream in opened]
        published: list[list[str]] = [[], []]
        for round_ in range(3):
            for i, (ns, view) in enumerate(zip(spaces, views, strict=True)):
                email = ns.email(f"r{round_}")
                view.publish("user.created", {"uid": 7000 + round_, "email": email, "name": "K"})
                published[i].append(email)
        for i, view in enumerate(views):
            for email in published[i]:
                view.expect_event("user.created", where={"email": email}, timeout=15)
        for i, (_, stream) in enumerate(opened):
            kept = {e.data["email"] for e in stream.snapshot() if e.type == "user.created"}
            assert kept == set(published[i]), "a stream kept another run's events"
            # The other run's events were read (they share the topic) and dropped unkept.
            deadline = time.monotonic() + 15
            while stream.dropped < len(published[1 - i]) and time.monotonic() < deadline:
                stream.wait(0.2)
            assert stream.dropped >= len(published[1 - i]), "the other run's events went unseen"
            assert all(e.violation == "" and e.schema_id is not None for e in stream.snapshot())
    finally:
        for transport, stream in opened:
            stream.close()
            transport.close()


def test_a_killed_runs_group_and_topic_are_swept_and_the_services_are_not(
    kafka_environ: dict[str, str], profile: Profile, admin: AdminClient
) -> None:
    namespace = fresh_namespace()
    group, topic = f"{namespace}-events", f"{namespace}-scratch"
    # What a crashed run could leave: a group with a committed offset, and a topic of its own.
    consumer = Consumer({**client_config(profile), "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(profile.kafka_topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    assert group in groups(admin) and topic in topics(admin)

    def sweep(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "harness", "sweep", "--older-than", "0", *args],
            cwd=REPO,
            env=kafka_environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        return done.stdout

    plan = sweep()
    row = next((line for line in plan.splitlines() if str(namespace.run) in line), "")
    assert "1 kafka_group" in row and "1 kafka_topic" in row, plan
    sweep("--yes")
    assert group not in groups(admin)
    assert topic not in topics(admin)
    assert profile.kafka_consumer_group in groups(admin)
    assert profile.kafka_topic in topics(admin)


def test_the_end_of_run_wait_holds_until_the_consumer_group_has_caught_up(
    kafka_environ: dict[str, str], profile: Profile, admin: AdminClient
) -> None:
    """The lifecycle's wait before the residue check, on a group this test drives: it waits
    while the group lags, and returns once the group has committed up to the end."""
    namespace = fresh_namespace()
    group = f"{namespace}-lagging"
    config = client_config(profile)
    consumer = Consumer({**config, "group.id": group})
    producer = Producer(config)
    try:
        partitions = sorted(
            consumer.list_topics(profile.kafka_topic, 10).topics[profile.kafka_topic].partitions
        )
        ends = {}
        for p in partitions:
            ends[p] = consumer.get_watermark_offsets(TopicPartition(profile.kafka_topic, p), 10)[1]
        consumer.commit(
            offsets=[TopicPartition(profile.kafka_topic, p, ends[p]) for p in partitions],
            asynchronous=False,
        )
        # Three records the group has not processed: it lags.
        for i in range(3):
            producer.produce(profile.kafka_topic, value=b"{}", key=str(i).encode(), partition=0)
        producer.flush(10)
        lagging = load_profile(
            "sandbox",
            REPO / "environments.toml",
            environ={**kafka_environ, "HARNESS_KAFKA_CONSUMER_GROUP": group},
        )
        said: list[str] = []
        _wait_for_consumer_group(lagging, 1.0, said.append)
        assert any("waiting for consumer group" in line and "3 event(s)" in line for line in said)
        assert any("did not catch up" in line for line in said), said

        caught_up = threading.Event()

        def catch_up() -> None:
            time.sleep(1.0)
            high = consumer.get_watermark_offsets(TopicPartition(profile.kafka_topic, 0), 10)[1]
            consumer.commit(
                offsets=[TopicPartition(profile.kafka_topic, 0, high)], asynchronous=False
            )
            caught_up.set()

        worker = threading.Thread(target=catch_up)
        worker.start()
        said.clear()
        _wait_for_consumer_group(lagging, 30.0, said.append)
        assert caught_up.is_set(), "the wait returned while the group still lagged"
        assert not any("did not catch up" in line for line in said), said
        worker.join()
    finally:
        consumer.close()
        admin.delete_consumer_groups([group], request_timeout=10)[group].result()


def test_a_wire_format_event_breaking_its_registry_schema_names_the_field(
    profile: Profile,
) -> None:
    """Written by a plain producer in the Confluent wire format with the registry's id of
    user.created v1: the harness resolves the id at the registry and names the field."""
    namespace = fresh_namespace()
    transport, stream = stream_for(profile, namespace)
    try:
        entry = registry_version(profile.schema_registry_url, "user.created", 1)
        assert entry is not None
        email = namespace.email()
        event: dict[str, Any] = build_event(
            "user.created", {"uid": "not-a-number", "email": email, "name": "W"}
        )
        import json

        producer = Producer(client_config(profile))
        producer.produce(
            profile.kafka_topic,
            value=encode_wire(int(entry["id"]), json.dumps(event).encode()),
            key=b"not-a-number",
            headers=[("type", b"user.created"), ("version", b"1")],
        )
        producer.flush(10)
        view = Expectations(stream, lambda: {email}, LatencyRecorder())
        with pytest.raises(ContractViolation, match=r"at \$\.data\.uid: 'not-a-number'") as info:
            view.expect_event("user.created", where={"email": email}, timeout=15)
        assert info.value.path == "$.data.uid"
        seen = view.seen()[0]
        assert seen.schema_id == int(entry["id"])
        assert f"schema id {entry['id']}" in seen.violation
    finally:
        stream.close()
        transport.close()


def test_doctor_checks_the_topic_and_the_consumer_group(kafka_environ: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "doctor"],
        cwd=REPO,
        env=kafka_environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    topic = next(line for line in lines if "Kafka topic" in line)
    group = next(line for line in lines if "consumer group" in line)
    assert topic.startswith("OK") and "sandbox-user-events: 3 partition(s)" in topic
    assert group.startswith("OK") and "sandbox-notifications-processor: lag" in group
    assert "events topic" not in done.stdout and "processor queue" not in done.stdout


KAFKA_FAILING = """
def test_signs_up_then_fails(api, user, events):
    events.expect_event("user.created", where={"uid": user.uid}, timeout=15)
    events.wait_until_processed(timeout=20)
    response = api.get(f"/users/{user.uid}/notifications", auth=user.auth)
    assert response.json()["notifications"] == []  # the welcome is there: this fails
"""


def test_a_failed_tests_service_logs_have_the_kafka_processors_line_for_its_event(
    kafka_environ: dict[str, str], tmp_path: Path
) -> None:
    """Issue 23 on Kafka: the service published the sign-up's user.created with the request's
    traceparent as a header; the processor's line for that event carries the test's trace."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["fixtures.users"]\n')
    (tmp_path / "test_kafka_trace.py").write_text(KAFKA_FAILING)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--report", str(report), "test_kafka_trace.py"],
        cwd=tmp_path,
        env={**kafka_environ, "HARNESS_STATE_DIR": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 1, output
    result = json.loads(report.read_text())
    assert result["target"]["events_bus"] == "kafka", result["target"]
    assert result["target"]["events_topic"] == kafka_environ["HARNESS_KAFKA_TOPIC"]
    (failure,) = result["failures"]
    trace_id = failure["trace_id"]
    assert len(trace_id) == 32 and int(trace_id, 16)
    processor = "/aws/lambda/reference-service-sandbox-process_user_events_kafka"
    handled = [
        line
        for line in failure["service_logs"]
        if line["log_group"] == processor and "handling user.created" in line["message"]
    ]
    assert handled, failure["service_logs"]
    assert f'"trace_id": "{trace_id}"' in handled[0]["message"]
    requested = [
        line["message"] for line in failure["service_logs"] if "/notifications" in line["message"]
    ]
    assert requested and trace_id in requested[-1], failure["service_logs"]
    assert "events on kafka (topic " in output
