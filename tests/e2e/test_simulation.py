"""The fault simulation's seeded slice (``make simulate`` runs the whole matrix): real
``harness run`` processes against one sandbox, each held at a phase by the engine's fault
point and hurt there — every fault of the matrix at least once, the key phases, and the
multi-run scenarios of issue 25 — then held to every invariant (tests/simulate/invariants.py).

Every scenario here must keep every invariant: a violation fails ``make test``. The driver's
own detectors are proven first: each must see what it is for (a process left behind, a stray
file, a changed environment, a lying report).

A few scenarios also run on Kafka (a Ctrl-C in a test, a killed worker, the drain wait), in a
simulation of their own on a ``--bus kafka`` sandbox; then the Kafka digest is shown a harness
topic and consumer group left on the broker, and a consumer group that lags. They are one
test, so that under xdist's load distribution the broker starts once (a cold start takes most
of a minute). Without java or mvn that test is skipped with one line saying what to install,
except under ``CI=true``, where it must run (and fails instead).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.namespace import Namespace, RunId, worker_part
from tests.simulate import digest, invariants
from tests.simulate.matrix import BUS_PHASES, FAULTS, MULTI, QUICK_KAFKA, Scenario, parse_selector
from tests.simulate.processes import ProcessWatch
from tests.simulate.runner import Simulation

pytestmark = pytest.mark.e2e

SEED = 1

#: Every scenario of the slice keeps every invariant. (Each once failed on the code of
#: issues 20 and 25: the earlier run's report left at the path, a double Ctrl-C ending in
#: passed/0, a second Ctrl-C in cleanup writing no report, a killed worker's data reported as
#: a leak, a torn report after a full disk, and the four ways one command took a live run's
#: data — docs/testing.md, "The fault simulation".)
SLICE: list[str] = [
    "sandbox-start.sigint.n1",
    "preflight.sigterm-controller.n1",
    "lease.sigkill-controller.n1",
    "create.sigint2-0.05.n1",
    "created.fsize.n1",
    "created.drop-service.n2",
    "cleanup.sigint2-0.3.n2",
    "cleanup.sigkill-worker.n2",
    "cleanup.sigterm-group.n1",
    "worker-finish.sigterm-controller.n2",
    "preflight.sigint2-1.n1",
    "residue.drop-aws.n2",
    "report.fsize.n1",
    "alert.sigkill-controller.n1",
    "multi.same-run-id",
    "multi.shard-recover",
    "multi.other-hostname",
    "multi.residue-live-shard",
]


#: On Kafka: a Ctrl-C in a test, the SIGKILL of a worker in its cleanup, a stop in the drain
#: wait (the service's consumer group's lag) — where the bus matters.
KAFKA_SLICE: list[str] = [
    "created.sigint.n1",
    "cleanup.sigkill-worker.n2",
    "drain.sigint2-0.3.n2",
]
KAFKA_MISSING = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
KAFKA_INSTALL = (
    "the Kafka scenarios need Java 17 and Maven (`apt-get install openjdk-17-jre-headless maven`)"
)


def _params() -> list[object]:
    return [pytest.param(selector, id=selector) for selector in SLICE]


@pytest.fixture(scope="module")
def simulation() -> Iterator[Simulation]:
    with Simulation() as sim:
        yield sim


@pytest.fixture(scope="module")
def kafka_simulation() -> Iterator[Simulation]:
    if KAFKA_MISSING and os.environ.get("CI") != "true":
        pytest.skip(f"{' and '.join(KAFKA_MISSING)} not found: {KAFKA_INSTALL}")
    with Simulation(bus="kafka") as sim:
        yield sim


def test_the_slice_covers_every_fault_and_the_key_phases() -> None:
    scenarios = [parse_selector(s, SEED) for s in SLICE]
    singles = [s for s in scenarios if isinstance(s, Scenario)]
    assert {s.fault for s in singles} == set(FAULTS)
    assert {"preflight", "lease", "create", "created", "cleanup", "residue", "report"} <= {
        s.phase for s in singles
    }
    assert {s.workers for s in singles} == {1, 2}
    assert {s.id for s in scenarios if s.id.startswith("multi.")} == {f"multi.{m}" for m in MULTI}


def test_the_kafka_slice_is_where_the_bus_matters() -> None:
    scenarios = [parse_selector(s, SEED, "kafka") for s in [*KAFKA_SLICE, *QUICK_KAFKA]]
    singles = [s for s in scenarios if isinstance(s, Scenario)]
    assert {s.phase for s in singles} <= set(BUS_PHASES)
    slice_ = singles[: len(KAFKA_SLICE)]
    assert any(s.spec.signals[:1] == ("SIGINT",) and s.phase == "created" for s in slice_)
    assert any(s.fault == "sigkill-worker" for s in slice_)
    assert any(s.phase == "drain" for s in slice_)
    quick = singles[len(KAFKA_SLICE) :]
    assert {s.fault for s in quick} == set(FAULTS) and {s.phase for s in quick} == set(BUS_PHASES)


@pytest.mark.parametrize("selector", _params())
def test_scenario_keeps_every_invariant(simulation: Simulation, selector: str) -> None:
    outcome = simulation.run(parse_selector(selector, SEED))
    print(outcome.render())
    assert outcome.ok, outcome.render()


# -- the driver's detectors, each shown what it must see ------------------------------------


def test_a_process_left_in_a_session_of_its_own_is_seen(simulation: Simulation) -> None:
    workspace = simulation.workspace("detector-process")
    watch = ProcessWatch()
    try:
        # like the sandbox's emulator: a child that starts a session of its own, then outlives
        # its parent
        command = "setsid sleep 60 & sleep 0.5; exit 0"
        launched = simulation.launch(
            "sh", ["sh", "-c", command], workspace, simulation.environ(), watch
        )
        assert launched.finish(20).returncode == 0
        found = invariants.check_processes(watch.wait_gone(1.0))
        assert [v.invariant for v in found] == [invariants.NOTHING_LEFT]
        assert "sleep 60" in found[0].detail
    finally:
        watch.kill_all()
        watch.stop()
    assert watch.wait_gone(5.0) == []


def test_a_stray_file_and_a_tmp_entry_are_seen(simulation: Simulation) -> None:
    workspace = simulation.workspace("detector-files")
    before = invariants.project_files(workspace.project)
    watch = ProcessWatch()
    try:
        launched = simulation.launch(
            "sh",
            ["sh", "-c", "touch /tmp/left-behind stray.txt .harness-ok; mkdir -p .harness"],
            workspace,
            simulation.environ(),
            watch,
        )
        assert launched.finish(20).returncode == 0
    finally:
        watch.stop()
    found = invariants.check_files(workspace.project, before, [], workspace.tmp)
    details = " ".join(v.detail for v in found)
    assert "stray.txt" in details and ".harness-ok" in details
    if simulation.private_tmp:
        assert "left-behind" in details
        assert not Path("/tmp/left-behind").exists()  # it went to the command's own /tmp


def test_a_changed_environment_is_seen_and_put_back(simulation: Simulation) -> None:
    aws = simulation.aws
    table = simulation.exports["HARNESS_USERS_TABLE"]
    before = digest.snapshot(aws)
    aws.dynamodb.put_item(TableName=table, Item={"Uid": {"N": "7"}, "Email": {"S": "x@y.test"}})
    after = digest.snapshot(aws)
    lines = digest.diff(before, after)
    assert len(lines) == 1 and lines[0].startswith(f"{table} + ") and "Uid=7" in lines[0]
    assert before.digest() != after.digest()
    assert digest.restore(aws, before, after) == []
    assert digest.diff(before, digest.snapshot(aws)) == []


def test_a_lying_or_stale_report_is_seen(tmp_path: Path) -> None:
    run_id = str(RunId.generate())
    path = tmp_path / "report.json"
    stale = invariants.stale_report(path)
    left = invariants.CommandResult("run", run_id, 130, "", path, stale)
    assert "still at the path" in invariants.check_report(left)[0].detail
    path.write_text(json.dumps({"run_id": run_id, "outcome": "passed", "exit_status": 0}))
    lying = invariants.CommandResult("run", run_id, 130, "", path, stale)
    assert "the report says outcome='passed'" in invariants.check_report(lying)[0].detail
    killed = invariants.CommandResult("run", run_id, -9, "", path, stale)
    assert "reads as complete" in invariants.check_report(killed)[0].detail
    path.write_text(json.dumps({"run_id": run_id, "outcome": "interrupted", "exit_status": 130}))
    truthful = invariants.CommandResult("run", run_id, 130, "", path, stale)
    assert invariants.check_report(truthful, expect_interrupted=True) == []
    interrupted = invariants.CommandResult("run", run_id, -2, "", path, stale)
    assert invariants.check_report(interrupted) == []  # a shell sees 130 = the report's
    path.unlink()
    absent = invariants.CommandResult("run", run_id, -9, "", path, stale)
    assert invariants.check_report(absent) == []  # death by a signal: no report is the truth


# -- on Kafka ------------------------------------------------------------------------------


def test_kafka_scenarios_keep_every_invariant_and_a_harness_group_or_topic_is_seen(
    kafka_simulation: Simulation,
) -> None:
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import NewTopic

    sim = kafka_simulation
    failed = []
    for selector in KAFKA_SLICE:
        outcome = sim.run(parse_selector(selector, SEED, "kafka"))
        print(outcome.render())
        if not outcome.ok:
            failed.append(outcome.render())
    assert not failed, "\n".join(failed)

    # The Kafka digest's detector, after the scenarios (the service's topic now holds their
    # events): what a crashed run could leave on the broker — a topic, and a group with a
    # committed offset, carrying its namespace — made with plain clients, not the harness's.
    kafka = sim.aws.kafka
    assert kafka is not None and kafka.topic and kafka.group
    before = digest.snapshot(sim.aws)
    assert kafka.topic in before.kafka_topics and kafka.group in before.kafka_groups
    assert kafka.lag() == 0  # the service's group has caught up: the digest waited for it
    namespace = Namespace(RunId.generate(), worker_part())
    topic, group = f"{namespace}-scratch", f"{namespace}-events"
    kafka.admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    bootstrap = sim.exports["HARNESS_KAFKA_BOOTSTRAP_SERVERS"]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(kafka.topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    # ... and the lag the drain wait reads is real: that group, at offset 0, lags by every
    # event the scenarios published.
    lagging = digest.Kafka({**sim.exports, "HARNESS_KAFKA_CONSUMER_GROUP": group})
    assert lagging.lag() > 0
    after = digest.snapshot(sim.aws, drain_timeout=5)
    lines = digest.diff(before, after)
    assert f"kafka topic + {topic} (1 partition(s))" in lines, lines
    assert f"kafka consumer group + {group}" in lines, lines
    assert len(lines) == 2, lines
    found = invariants.check_environment(lines, "no recover")
    assert [v.invariant for v in found] == [invariants.ENVIRONMENT]
    assert digest.restore(sim.aws, before, after) == []
    assert digest.diff(before, digest.snapshot(sim.aws)) == []


def test_a_checkout_under_tmp_is_bound_back_into_each_private_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clone in /tmp/fresh: the private /tmp would hide the checkout (every scenario ran
    `exec /tmp/fresh/.venv/bin/python: not found`, exit 127). The wrapper binds it back at its
    own path, and the empty folders it binds on are never counted as left in /tmp."""
    from tests.simulate import runner

    private, project = tmp_path / "tmp", tmp_path / "project"
    private.mkdir()
    project.mkdir()
    monkeypatch.setattr(invariants, "CHECKOUT_IN_TMP", ("fresh", "repo"))
    script = runner._wrap(["true"], private, None)[6]
    assert f"mount --bind {runner.REPO} {private}/fresh/repo || exit 97" in script
    assert f"mount --rbind {private} /tmp || exit 97" in script
    (private / "fresh" / "repo").mkdir(parents=True)  # what the mount left
    assert invariants.check_files(project, {}, [], private) == []
    (private / "fresh" / "repo" / "made.txt").write_text("x")  # a command's own file there
    (left,) = invariants.check_files(project, {}, [], private)
    assert left.detail == "left in /tmp: ['fresh']"
    monkeypatch.setattr(invariants, "CHECKOUT_IN_TMP", ())
    assert runner._wrap(["true"], private, None)[6].startswith(f"mount --bind {private} /tmp")
