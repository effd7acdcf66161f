"""Harness overhead: the same N API scenarios as plain pytest + requests vs with the harness.

Each scenario is sign up -> log in -> read self -> patch self, and each side cleans up what
it created: the plain side with ``DELETE /users/{uid}`` and the user's own token in a fixture
(the fairest hand-written cleanup there is), the harness side through its fixtures
(namespaced user, write-ahead journal, guarded delete through the same route, transcript)
plus the run's preflight, lease, event drain and residue check. Both run as ``pytest``
subprocesses against one sandbox, in ABBA-ordered rounds (the side that goes first
alternates); the figure is the median of the per-round ratios. Wall times on a shared
2-core machine swing by ±10% from run to run, so the client CPU each side spent is printed
too: the harness's own cost, free of the sandbox's and the machine's noise. ``make bench``
compiles the engine's and the adapter's bytecode first (the Makefile's ``BYTECODE`` step), as
pip does at install: where bytecode is not written (``PYTHONDONTWRITEBYTECODE``) an editable
checkout would otherwise compile them from source in every process. Each round also times
the libraries on their own (a process that imports boto3 and builds the clients a run uses;
one that imports faker and makes a name; both over one that imports requests and pytest),
so the per-run figure is shown beside what those libraries cost. Usage:
``.venv/bin/python -m bench.overhead [--scenarios N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench._common import (
    NO_DEV_PLUGINS,
    PLUGINS,
    emit,
    harness_environ,
    median,
    note,
    require_ok,
    run,
    sandbox,
    write_suite,
)
from harness.clients.aws import Aws
from harness.events.quiescence import wait_for_quiescence
from harness.kinds.registry import load_profile

PLAIN_CONFTEST = """
import os
import uuid

import pytest
import requests

BASE = os.environ["HARNESS_BASE_URL"]
SESSION = requests.Session()  # one connection pool per process, as the harness has


@pytest.fixture
def plain_user():
    email = f"plain-{uuid.uuid4().hex[:16]}@bench.example.test"
    password = uuid.uuid4().hex
    created = SESSION.post(
        f"{BASE}/users", json={"email": email, "name": "Plain User", "password": password}
    )
    assert created.status_code == 201, created.text
    login = SESSION.post(f"{BASE}/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    body = login.json()
    auth = {"uid": str(body["uid"]), "token": body["token"]}
    yield body["uid"], email, auth
    gone = SESSION.delete(f"{BASE}/users/{body['uid']}", headers=auth)
    assert gone.status_code == 204, gone.text
"""

PLAIN_TEST = """
import pytest

from conftest import BASE, SESSION


@pytest.mark.parametrize("n", range({n}))
def test_scenario(plain_user, n):
    uid, email, auth = plain_user
    me = SESSION.get(f"{{BASE}}/users/{{uid}}", headers=auth)
    assert me.status_code == 200 and me.json()["email"] == email
    body = {{"name": f"Renamed {{n}}"}}
    patched = SESSION.patch(f"{{BASE}}/users/{{uid}}", json=body, headers=auth)
    assert patched.status_code == 200 and patched.json()["name"] == f"Renamed {{n}}"
"""

PAUSE = 0.5

#: What the plain side's process loads anyway; the library probes below are timed over it.
LIBRARY_BASE = "import pytest, requests\n"
#: The AWS SDK as a run uses it: boto3, one session, the DynamoDB resource (and its client),
#: the SQS and SNS clients (preflight, lease, residue check, event drain, leaked-queue look).
AWS_SDK = LIBRARY_BASE + (
    "import boto3\n"
    "s = boto3.Session(region_name='us-east-1', aws_access_key_id='a', "
    "aws_secret_access_key='b')\n"
    "s.resource('dynamodb', endpoint_url='http://127.0.0.1:9').meta.client\n"
    "s.client('sqs', endpoint_url='http://127.0.0.1:9')\n"
    "s.client('sns', endpoint_url='http://127.0.0.1:9')\n"
)
#: Faker as the ``fake`` fixture builds it, and one name.
FAKER = LIBRARY_BASE + "import faker\nfaker.Faker(use_weighting=False).name()\n"

#: Loaded by both sides (``-p _loopclock``): the process's own CPU spent inside pytest's test
#: loop (setup, call and teardown of every test), appended to $LOOPCLOCK_FILE. The
#: loop's CPU excludes interpreter start-up, imports, preflight and the residue check, whose
#: run-to-run noise (±0.3 s) would otherwise swamp a per-test figure of a fraction of a ms.
LOOPCLOCK = """
import os
import time

import pytest

_started = []


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    _started.append(time.process_time())
    try:
        return (yield)
    finally:
        _started.append(time.process_time())


def pytest_unconfigure(config):
    if len(_started) == 2 and os.environ.get("LOOPCLOCK_FILE"):
        with open(os.environ["LOOPCLOCK_FILE"], "a", encoding="utf-8") as out:
            out.write(f"{_started[1] - _started[0]:.6f}\\n")
"""

HARNESS_TEST = """
import pytest


@pytest.mark.parametrize("n", range({n}))
def test_scenario(api, user, n):
    me = api.get(f"/users/{{user.uid}}", auth=user.auth)
    assert me.status_code == 200 and me.json()["email"] == user.email
    patched = api.patch(f"/users/{{user.uid}}", json={{"name": f"Renamed {{n}}"}}, auth=user.auth)
    assert patched.status_code == 200 and patched.json()["name"] == f"Renamed {{n}}"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=300, help="tests per side (300)")
    parser.add_argument("--rounds", type=int, default=10, help="ABBA-ordered rounds (10)")
    parser.add_argument("--profile", metavar="PATH", help="also cProfile one harness run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="env-harness-overhead-"))
    plain = write_suite(
        work / "plain",
        {
            "conftest.py": PLAIN_CONFTEST,
            "test_plain.py": PLAIN_TEST.format(n=args.scenarios),
            "_loopclock.py": LOOPCLOCK,
        },
    )
    harnessed = write_suite(
        work / "harnessed",
        {"test_harnessed.py": HARNESS_TEST.format(n=args.scenarios), "_loopclock.py": LOOPCLOCK},
    )
    # The same two suites with one scenario: the client CPU each side spends at two sizes
    # gives the harness's extra CPU per test (the slope) and per run (the intercept).
    plain_one = write_suite(
        work / "plain-one",
        {
            "conftest.py": PLAIN_CONFTEST,
            "test_plain.py": PLAIN_TEST.format(n=1),
            "_loopclock.py": LOOPCLOCK,
        },
    )
    harnessed_one = write_suite(
        work / "harnessed-one",
        {"test_harnessed.py": HARNESS_TEST.format(n=1), "_loopclock.py": LOOPCLOCK},
    )
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    pytest += NO_DEV_PLUGINS  # the same for both sides
    with sandbox("overhead") as box:
        env = harness_environ(box.exports, work / "state")
        plain_cmd = [*pytest, "-p", "_loopclock", "-p", "no:env_harness", "test_plain.py"]
        harness_cmd = [*pytest, "-p", "_loopclock", *PLUGINS, "test_harnessed.py"]
        require_ok(run(plain_cmd, env, plain), "plain warm-up")  # first-use imports, caches
        require_ok(run(harness_cmd, env, harnessed), "harness warm-up")
        walls: dict[str, list[float]] = {"plain": [], "harness": []}
        cpus: dict[str, list[float]] = {"plain": [], "harness": [], "plain1": [], "harness1": []}
        libraries: dict[str, list[float]] = {"base": [], "aws_sdk": [], "faker": []}
        probes = {"base": LIBRARY_BASE, "aws_sdk": AWS_SDK, "faker": FAKER}
        loops: dict[str, list[float]] = {side: [] for side in cpus}
        clock = work / "loopclock.txt"
        ratios: list[float] = []
        sqs = Aws(load_profile("sandbox", environ=env)).sqs
        commands = {
            "plain": (plain_cmd, plain),
            "harness": (harness_cmd, harnessed),
            "plain1": (plain_cmd, plain_one),
            "harness1": (harness_cmd, harnessed_one),
        }

        def measure(side: str) -> None:
            # The sandbox's processor finishes the previous run's asynchronous work
            # (user.created/deleted events) first, so no side pays for the other's.
            wait_for_quiescence(sqs, box.exports["HARNESS_PROCESSOR_QUEUE_URL"], timeout=120)
            time.sleep(PAUSE)
            command, directory = commands[side]
            clock.unlink(missing_ok=True)
            timed = require_ok(run(command, {**env, "LOOPCLOCK_FILE": str(clock)}, directory), side)
            walls.setdefault(side, []).append(timed.seconds)
            cpus[side].append(timed.cpu_seconds)
            loops[side].append(float(clock.read_text(encoding="utf-8").split()[-1]))

        for round_no in range(args.rounds):
            # ABBA: the side that goes first alternates, so whatever drifts during the bench
            # (the machine, the sandbox) favours neither side
            order = ("plain", "harness") if round_no % 2 == 0 else ("harness", "plain")
            for side in order:
                measure(side)
            for side in ("plain1", "harness1") if round_no % 2 == 0 else ("harness1", "plain1"):
                measure(side)
            for probe, code in probes.items():
                command = [sys.executable, "-c", code]
                libraries[probe].append(require_ok(run(command, env, work), probe).cpu_seconds)
            ratios.append(walls["harness"][-1] / walls["plain"][-1])
            note(
                f"round {round_no + 1}: plain {walls['plain'][-1]:.2f}s "
                f"(cpu {cpus['plain'][-1]:.2f}s) harness {walls['harness'][-1]:.2f}s "
                f"(cpu {cpus['harness'][-1]:.2f}s) ratio {ratios[-1]:.3f}"
            )
        if args.profile:
            profiled = [sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "pytest"]
            require_ok(
                run([*profiled, *pytest[3:], *PLUGINS, "test_harnessed.py"], env, harnessed),
                "profile",
            )
    emit("overhead_scenarios", args.scenarios)
    emit("overhead_rounds", args.rounds)
    emit("overhead_plain_seconds", median(walls["plain"]), ".2f")
    emit("overhead_harness_seconds", median(walls["harness"]), ".2f")
    # the median of per-round ratios: each pair runs back to back, so a burst of outside
    # load moves both halves of a ratio, not one side's median
    emit("overhead_ratio", median(ratios), ".3f")
    emit("overhead_ratio_per_round", " ".join(f"{r:.3f}" for r in ratios))
    plain_cpu, harness_cpu = median(cpus["plain"]), median(cpus["harness"])
    emit("overhead_plain_client_cpu_seconds", plain_cpu, ".2f")
    emit("overhead_harness_client_cpu_seconds", harness_cpu, ".2f")
    # what the harness itself adds, as a share of the plain run's time: the CPU its process
    # spends beyond plain pytest's (fixtures, journal, transcript, preflight, lease, residue
    # check, imports), which is all it can add when the environment is not on this machine
    emit("overhead_client_cpu_share", (harness_cpu - plain_cpu) / median(walls["plain"]), ".3f")
    # Per test: the harness's extra CPU inside the test loop, from N tests down to 1 (what
    # the first test pays once - lazy imports - cancels out), paired within each round so
    # the machine's drift between rounds cancels too; the median over rounds.
    per_round = [
        ((loops["harness"][i] - loops["harness1"][i]) - (loops["plain"][i] - loops["plain1"][i]))
        / max(args.scenarios - 1, 1)
        for i in range(args.rounds)
    ]
    per_test = median(per_round)
    emit("client_cpu_ms_per_test", per_test * 1000, ".2f")
    emit("client_cpu_ms_per_test_per_round", " ".join(f"{x * 1000:.2f}" for x in per_round))
    # Per run: the whole process's extra CPU at one test, less that one test's share.
    fixed = median([cpus["harness1"][i] - cpus["plain1"][i] for i in range(args.rounds)])
    emit("client_cpu_fixed_seconds", fixed - per_test, ".3f")
    # Beside it, in the same rounds: what the libraries a run needs cost a fresh process over
    # the plain side's own imports, and what is left of the per-run figure without them.
    sdk = [libraries["aws_sdk"][i] - libraries["base"][i] for i in range(args.rounds)]
    faker = [libraries["faker"][i] - libraries["base"][i] for i in range(args.rounds)]
    emit("client_cpu_aws_sdk_seconds", median(sdk), ".3f")
    emit("client_cpu_faker_seconds", median(faker), ".3f")
    engine = [
        cpus["harness1"][i] - cpus["plain1"][i] - per_test - sdk[i] - faker[i]
        for i in range(args.rounds)
    ]
    emit("client_cpu_engine_fixed_seconds", median(engine), ".3f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
