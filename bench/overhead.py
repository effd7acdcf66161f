"""Harness overhead: the same N API scenarios as plain pytest + requests vs with the harness.

Each scenario is sign up -> log in -> read self -> patch self, and each side cleans up what
it created: the plain side with ``DELETE /users/{uid}`` and the user's own token in a fixture
(the fairest hand-written cleanup there is), the harness side through its fixtures
(namespaced user, write-ahead journal, guarded storage deletes, transcript, lease, preflight
and the residue check). Both run as ``pytest`` subprocesses against one sandbox, interleaved
over several rounds; the figure is the ratio of the medians. Usage:
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
from harness.aws import Aws
from harness.config import load_profile
from harness.quiescence import wait_for_quiescence

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
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--profile", metavar="PATH", help="also cProfile one harness run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="env-harness-overhead-"))
    plain = write_suite(
        work / "plain",
        {"conftest.py": PLAIN_CONFTEST, "test_plain.py": PLAIN_TEST.format(n=args.scenarios)},
    )
    harnessed = write_suite(
        work / "harnessed", {"test_harnessed.py": HARNESS_TEST.format(n=args.scenarios)}
    )
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    pytest += NO_DEV_PLUGINS  # the same for both sides
    with sandbox("overhead") as box:
        env = harness_environ(box.exports, work / "state")
        plain_cmd = [*pytest, "test_plain.py"]
        harness_cmd = [*pytest, *PLUGINS, "test_harnessed.py"]
        require_ok(run(plain_cmd, env, plain), "plain warm-up")  # first-use imports, caches
        require_ok(run(harness_cmd, env, harnessed), "harness warm-up")
        plain_s: list[float] = []
        harness_s: list[float] = []
        ratios: list[float] = []
        sqs = Aws(load_profile("sandbox", environ=env)).sqs

        def settle() -> None:
            # The sandbox's processor finishes the previous run's asynchronous work
            # (user.created/deleted events) first, so no side pays for the other's.
            wait_for_quiescence(sqs, box.exports["HARNESS_PROCESSOR_QUEUE_URL"], timeout=120)
            time.sleep(PAUSE)

        for round_no in range(args.rounds):
            settle()
            plain_s.append(require_ok(run(plain_cmd, env, plain), "plain").seconds)
            settle()
            harness_s.append(require_ok(run(harness_cmd, env, harnessed), "harness").seconds)
            ratios.append(harness_s[-1] / plain_s[-1])
            note(
                f"round {round_no + 1}: plain {plain_s[-1]:.2f}s harness {harness_s[-1]:.2f}s "
                f"ratio {ratios[-1]:.3f}"
            )
        if args.profile:
            profiled = [sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "pytest"]
            require_ok(
                run([*profiled, *pytest[3:], *PLUGINS, "test_harnessed.py"], env, harnessed),
                "profile",
            )
    emit("overhead_scenarios", args.scenarios)
    emit("overhead_plain_seconds", median(plain_s), ".2f")
    emit("overhead_harness_seconds", median(harness_s), ".2f")
    # the median of per-round ratios: each pair runs back to back, so a burst of outside
    # load moves both halves of a ratio, not one side's median
    emit("overhead_ratio", median(ratios), ".3f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
