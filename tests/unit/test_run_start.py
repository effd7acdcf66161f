"""The run's start (harness/run/lifecycle.py start_controller) against real HTTP on loopback —
a service answering /health and an AWS endpoint answering DynamoDB calls, each recording what
it received — plus `--seed` replay and option precedence through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cleanup.journal import Journal, run_dir
from harness.cleanup.recovery import OWNER_FILE
from harness.cli.main import _parser, build_pytest_args
from harness.config import Profile
from harness.namespace import Namespace, RunId
from harness.run.lifecycle import TargetOptions, start_controller
from harness.run.session import HarnessSession
from tests.unit.loopback import Loopback, loopback

REPO = Path(__file__).resolve().parents[2]
DEAD_RUN = "itest-20261127t100000-dead"


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Loopback, Loopback]]:
    """A service and an AWS endpoint on loopback, a clean HARNESS_* environment, and a state
    folder holding a dead run of this target with one unsettled resource."""
    for name in list(os.environ):
        if name.startswith("HARNESS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with loopback() as service, loopback() as aws:
        service.route("/health", 200, {"environment": "staging"})
        aws.route("/", 200, {"Table": {"TableName": "leases", "ItemCount": 0}})
        directory = run_dir(tmp_path / "state", DEAD_RUN)
        directory.mkdir(parents=True)
        owner = {"host": "elsewhere", "pid": 0, "base_url": service.url, "shard": ""}
        (directory / OWNER_FILE).write_text(json.dumps(owner))
        journal = Journal(directory / "gw0.jsonl")
        journal.append("intent", 1, kind="user", ids={"email": "x@example.com"})
        journal.close()
        yield service, aws


def profiles(tmp_path: Path, service: Loopback, aws: Loopback, protected: bool) -> str:
    path = tmp_path / "environments.toml"
    path.write_text(
        f'[staging]\nbase_url = "{service.url}"\naws_endpoint_url = "{aws.url}"\n'
        f'aws_region = "us-east-1"\nlease_table = "leases"\nprotected = {str(protected).lower()}\n'
    )
    return str(path)


def operations(aws: Loopback) -> list[str]:
    return [r.headers.get("X-Amz-Target", "").split(".")[-1] for r in aws.received]


def test_a_protected_target_gets_no_lease_and_no_recovery(
    tmp_path: Path, target: tuple[Loopback, Loopback]
) -> None:
    service, aws = target
    journal = run_dir(tmp_path / "state", DEAD_RUN) / "gw0.jsonl"
    before = journal.read_text()
    options = TargetOptions(env="staging", config=profiles(tmp_path, service, aws, True))
    state = start_controller(options, seed=5)
    assert state.profile.is_protected and state.lease is None
    assert operations(aws) == ["DescribeTable"]  # preflight read the lease table; no write
    assert journal.read_text() == before  # the dead run was not replayed
    assert [(r.method, r.path) for r in service.received] == [("GET", "/health")]
    assert state.report.identity == {"environment": "staging"}


def test_an_unprotected_target_takes_the_lease_and_recovers_dead_runs(
    tmp_path: Path, target: tuple[Loopback, Loopback]
) -> None:
    """The same start with protected = false: what the protected test proves absent happens."""
    service, aws = target
    journal = run_dir(tmp_path / "state", DEAD_RUN) / "gw0.jsonl"
    before = journal.read_text()
    messages: list[str] = []
    options = TargetOptions(env="staging", config=profiles(tmp_path, service, aws, False))
    state = start_controller(options, seed=5, progress=messages.append)
    try:
        assert state.lease is not None
        # preflight's read, this run's lease taken (before it writes anything, recovery
        # included), the dead run's lease read by key (is it alive?), then released
        assert operations(aws) == ["DescribeTable", "PutItem", "GetItem", "DeleteItem"]
        assert f"{DEAD_RUN}-lease" in aws.received[2].body.decode()
        assert f"{DEAD_RUN}-lease" in aws.received[3].body.decode()
        assert journal.read_text() != before  # replayed: the unknown kind's refusal journaled
        assert messages[0].startswith("target [staging] (flag --env): ")
        assert messages[1:] == [
            f"recovered dead run {DEAD_RUN}: 0 deleted, 0 already gone, "
            f"0 written by the service for them, 1 failed"
        ]
    finally:
        if state.lease is not None:
            state.lease._stop.set()


def test_the_seed_is_the_options_else_the_environments_and_is_handed_on(
    tmp_path: Path, target: tuple[Loopback, Loopback], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, aws = target
    options = TargetOptions(env="staging", config=profiles(tmp_path, service, aws, True))
    first = start_controller(options, seed=42)
    assert first.seed == 42
    assert os.environ["HARNESS_SEED"] == "42"  # the workers replay the same seed
    first.release_lock()  # the next start reuses its run id (handed on in the environment)
    monkeypatch.setenv("HARNESS_SEED", "7")
    second = start_controller(options, seed=None)
    assert second.seed == 7
    second.release_lock()
    monkeypatch.setenv("HARNESS_RUN_ID", "itest-20261127t100000-abcd")
    assert str(start_controller(options, seed=1).run_id) == "itest-20261127t100000-abcd"


def test_seed_replays_the_same_test_data(tmp_path: Path) -> None:
    """`harness run --seed N` reaches pytest as --harness-seed=N, and the same run seed gives
    every test the same per-test seed, so the same names (a different seed: different)."""
    options, _ = _parser().parse_known_args(["run", "--seed", "1234"])
    assert "--harness-seed=1234" in build_pytest_args(options, [])
    plain, _ = _parser().parse_known_args(["run"])
    assert not any(a.startswith("--harness-seed") for a in build_pytest_args(plain, []))
    # harness run always puts the plugin in charge, profiles file or not
    assert "--harness" in build_pytest_args(plain, [])

    from harness.pytest_plugin.fixtures import _faker

    def names(seed: int, nodeid: str) -> list[str]:
        namespace = Namespace(RunId.generate(), "gw0")
        session = HarnessSession(Profile(name="sandbox"), namespace, seed, tmp_path)
        faker = _faker()
        faker.seed_instance(session.test_seed(nodeid))
        return [faker.name() for _ in range(3)]

    first = names(1234, "suites/users/test_users.py::test_signup")
    assert names(1234, "suites/users/test_users.py::test_signup") == first
    assert names(1235, "suites/users/test_users.py::test_signup") != first
    assert names(1234, "suites/users/test_users.py::test_login") != first


def test_option_beats_environment_beats_file_through_the_real_command_line(
    tmp_path: Path,
) -> None:
    """`harness doctor --env staging --harness-config X` with $HARNESS_ENV and $HARNESS_CONFIG
    naming something else: the options win; $HARNESS_BASE_URL wins over the file's base_url."""
    with loopback() as chosen, loopback() as wrong, loopback() as from_env:
        for server, name in ((chosen, "staging"), (wrong, "prod"), (from_env, "staging")):
            server.route("/health", 200, {"environment": name})
        config = tmp_path / "chosen.toml"
        config.write_text(
            f'[staging]\nbase_url = "{chosen.url}"\nprotected = false\n'
            f'[prod]\nbase_url = "{wrong.url}"\n'
        )
        decoy = tmp_path / "decoy.toml"
        decoy.write_text(f'[staging]\nbase_url = "{wrong.url}"\n')
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
        environ.update(HARNESS_ENV="prod", HARNESS_CONFIG=str(decoy), PYTHONPATH=str(REPO))
        command = [sys.executable, "-m", "harness", "doctor", "--no-start"]
        args = ["--env", "staging", "--harness-config", str(config)]
        first = subprocess.run(
            command + args, env=environ, capture_output=True, text=True, timeout=120
        )
        environ["HARNESS_BASE_URL"] = from_env.url
        environ["HARNESS_ALLOW_ENV_OVERRIDE"] = "1"  # precedence, not the stale-export guard
        second = subprocess.run(
            command + args, env=environ, capture_output=True, text=True, timeout=120
        )
    assert f"profile [staging] ({config})" in first.stdout, first.stdout + first.stderr
    assert f"GET {chosen.url}/health answered 200" in first.stdout, first.stdout
    assert "identity       environment 'staging'" in first.stdout, first.stdout
    assert "/health" in [r.path for r in chosen.received]
    assert wrong.received == []
    seen = len(chosen.received)
    assert f"GET {from_env.url}/health answered 200" in second.stdout, second.stdout
    assert "/health" in [r.path for r in from_env.received]
    assert len(chosen.received) == seen and wrong.received == []


def test_fake_draws_uniformly_its_documented_fast_mode() -> None:
    """The README: faker runs with uniform choices (``use_weighting=False``). With census
    weights an element weighted 0.001 would come up about once in 400 draws; uniformly,
    about half the time."""
    from collections import OrderedDict

    from harness.pytest_plugin.fixtures import _faker

    faker = _faker()
    faker.seed_instance(7)
    weighted = OrderedDict([("common", 0.999), ("rare", 0.001)])
    draws = [faker.random_element(weighted) for _ in range(400)]
    assert 120 < draws.count("rare") < 280, draws.count("rare")
