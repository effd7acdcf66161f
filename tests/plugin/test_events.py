"""The events guarantees, proven with real runs against a live sandbox: two concurrent runs
each see only their own events; a malformed event fails the run with the offending field's
path; a profile's Schema Registry URL is really used; a late asynchronous write is caught,
counted and cleaned; a SIGKILLed run's temporary queue is found and removed by the sweeper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.clients.aws import Aws
from harness.kinds import load_kinds
from harness.kinds.registry import load_profile
from harness.namespace import RunId
from harness.safety.guards import Owner, check
from tests.conftest import CONTRACTS, REPO
from tests.digest import items_mentioning
from tests.registry_standin import RegistryStandIn

pytestmark = pytest.mark.e2e

CONFTEST = 'pytest_plugins = ["fixtures.users"]\n'


def queues_and_subscriptions(aws: Aws, text: str) -> list[str]:
    """Every queue URL and subscription endpoint mentioning ``text`` (independent of the
    queue kind's own finder)."""
    found = [u for u in aws.sqs.list_queues().get("QueueUrls", []) if text in u]
    for page in aws.sns.get_paginator("list_subscriptions").paginate():
        found += [s["Endpoint"] for s in page["Subscriptions"] if text in s["Endpoint"]]
    return found


class Run:
    def __init__(self, returncode: int, output: str, run_id: str, report: Path) -> None:
        self.returncode = returncode
        self.output = output
        self.run_id = run_id
        self.report: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}


def start_run(
    directory: Path, source: str, environ: dict[str, str], *args: str
) -> tuple[subprocess.Popen[str], str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "test_it.py").write_text(source)
    run_id = str(RunId.generate())
    report = directory / "report.json"
    env = {**environ, "HARNESS_RUN_ID": run_id, "HARNESS_STATE_DIR": str(directory / ".harness")}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    process = subprocess.Popen(
        [*command, "--harness-report", str(report), *args],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, run_id, report


def finish(started: tuple[subprocess.Popen[str], str, Path]) -> Run:
    process, run_id, report = started
    output, _ = process.communicate(timeout=300)
    return Run(process.returncode, output, run_id, report)


def run_one(tmp_path: Path, source: str, environ: dict[str, str], *args: str) -> Run:
    return finish(start_run(tmp_path / "run", source, environ, *args))


CONCURRENT = """
import json, os, pathlib
from harness.waiting import eventually

def test_sees_only_its_own_events(events, event_stream, user_factory, namespace):
    me, other = os.environ["ME"], os.environ["OTHER"]
    shared = pathlib.Path(os.environ["SHARED"])
    (shared / f"{me}.ready").write_text("")
    eventually(lambda: (shared / f"{other}.ready").stat(), timeout=120)
    users = [user_factory(login=False) for _ in range(3)]
    for user in users:
        events.expect_event("user.created", where={"uid": user.uid})
    (shared / f"{me}.done").write_text(json.dumps([u.email for u in users]))
    eventually(lambda: (shared / f"{other}.done").stat(), timeout=120)
    theirs = json.loads((shared / f"{other}.done").read_text())

    def theirs_arrived_and_were_dropped():
        assert event_stream.dropped >= len(theirs), event_stream.dropped

    eventually(theirs_arrived_and_were_dropped, timeout=30)
    events.correlate(*theirs)
    events.no_event("user.created", where=lambda e: e.data["email"] in theirs, within=1)
    (shared / f"{me}.result").write_text(json.dumps({
        "mine": [u.email for u in users],
        "buffered": [e.data.get("email") for e in event_stream.snapshot()],
        "dropped": event_stream.dropped,
    }))
"""


def test_two_concurrent_runs_each_see_only_their_own_events(
    tmp_path: Path, sandbox_environ: dict[str, str], aws: Aws
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    started = [
        start_run(
            tmp_path / name,
            CONCURRENT,
            {**sandbox_environ, "ME": name, "OTHER": other, "SHARED": str(shared)},
        )
        for name, other in (("a", "b"), ("b", "a"))
    ]
    runs = [finish(s) for s in started]
    for run in runs:
        assert run.returncode == 0, run.output[-3000:]
    results = {n: json.loads((shared / f"{n}.result").read_text()) for n in ("a", "b")}
    for name, other in (("a", "b"), ("b", "a")):
        mine, theirs = set(results[name]["mine"]), set(results[other]["mine"])
        buffered = set(results[name]["buffered"])
        assert mine <= buffered, "a run missed its own events"
        assert not buffered & theirs, "a run saw the other run's events"
        assert results[name]["dropped"] >= len(theirs)
    for run in runs:
        assert items_mentioning(aws, run.run_id) == []
        assert queues_and_subscriptions(aws, run.run_id) == []


MALFORMED = """
from harness.events.stream import build_event

def test_receives_a_malformed_event(events, namespace):
    email = namespace.email()
    events.correlate(email)
    event = build_event("user.created", {"uid": "not-a-number", "email": email, "name": "M"})
    events.publish_raw(event, event_type="user.created")
    events.expect_event("user.created", where={"email": email})
"""


def test_a_malformed_event_on_the_topic_fails_the_test_with_the_field_path(
    tmp_path: Path, sandbox_environ: dict[str, str], aws: Aws
) -> None:
    run = run_one(tmp_path, MALFORMED, sandbox_environ)
    assert run.returncode == 1, run.output[-3000:]
    assert "ContractViolation" in run.output
    assert "violates its contract at $.data.uid: 'not-a-number' is not of type" in run.output
    assert run.report["resources"]["created"] == run.report["resources"]["cleaned"] == 1
    assert queues_and_subscriptions(aws, run.run_id) == []


REGISTRY = """
def test_uses_the_registry(events, user):
    events.expect_event("user.created", where={"uid": user.uid})
"""


def test_the_profiles_schema_registry_is_where_contracts_come_from(
    tmp_path: Path, sandbox_environ: dict[str, str]
) -> None:
    with RegistryStandIn.from_contracts(CONTRACTS) as registry:
        environ = {**sandbox_environ, "HARNESS_SCHEMA_REGISTRY_URL": registry.url}
        # break the local files so only the registry can answer
        environ["HARNESS_CONTRACTS_DIR"] = str(tmp_path / "no-contracts-here")
        run = run_one(tmp_path, REGISTRY, environ)
    assert run.returncode == 0, run.output[-3000:]
    assert "/subjects/user.created-value/versions/latest" in registry.requests


LATE_WRITE = """
def test_leaves_a_late_notification(api, namespace, events, harness_session):
    email = namespace.email("late")
    body = {"email": email, "name": "Late", "password": "late-pass-123"}
    response = api.post("/users", json=body)  # behind the ledger's back: a leak
    assert response.status_code == 201
    uid = response.json()["uid"]
    events.correlate(uid, email)
    created = events.expect_event("user.created", where={"uid": uid})
    events.wait_until_processed()
    ids = {"uid": uid, "notification_id": "welcome", "email": email}
    assert harness_session.kinds["notification"].delete(ids) == "deleted"
    # a redelivery the consumer only sees in 3 s: the welcome comes back after the test ends
    events.deliver_to_consumer(created, delay=3)
"""


def test_a_late_asynchronous_write_is_caught_counted_and_cleaned(
    tmp_path: Path, sandbox_environ: dict[str, str], aws: Aws
) -> None:
    run = run_one(tmp_path, LATE_WRITE, sandbox_environ, "--residue-settle", "0")
    assert run.returncode == 6, run.output[-3000:]  # the tests passed, the leak fails the run
    assert "waiting for 1 event(s) in the consumer's queue" in run.output
    assert sorted(leak["kind"] for leak in run.report["leaked"]) == ["notification", "user"]
    assert items_mentioning(aws, run.run_id) == []


KILLED = """
import os, signal

def test_dies_holding_a_queue(events, user):
    events.expect_event("user.created", where={"uid": user.uid})
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_sigkilled_runs_queue_is_removed_by_the_sweeper(
    tmp_path: Path, sandbox_environ: dict[str, str], aws: Aws
) -> None:
    run = run_one(tmp_path, KILLED, sandbox_environ)
    assert run.returncode == -9, run.output[-3000:]
    left = queues_and_subscriptions(aws, run.run_id)
    assert len(left) == 2, left  # the queue and its subscription
    swept = subprocess.run(
        [sys.executable, "-m", "harness", "sweep", "--older-than", "0", "--yes"],
        cwd=tmp_path,
        env={**sandbox_environ, "HARNESS_STATE_DIR": str(tmp_path / "sweep-state")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "queue" in swept.stdout, swept.stdout
    assert queues_and_subscriptions(aws, run.run_id) == []
    assert items_mentioning(aws, run.run_id) == []


def test_the_queue_kind_refuses_a_queue_without_a_namespace(
    sandbox_environ: dict[str, str], aws: Aws
) -> None:
    profile = load_profile("sandbox", REPO / "environments.toml", environ=sandbox_environ)
    kind = load_kinds(profile, aws)["queue"]
    processor = profile.processor_queue_url.rsplit("/", 1)[-1]
    with pytest.raises(Exception, match="carries no harness namespace"):
        check(kind, {"name": processor}, Owner(run=None))
    assert profile.processor_queue_url in aws.sqs.list_queues()["QueueUrls"]
    assert os.path.basename(profile.processor_queue_url) == processor
