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

PAUSE = 2.0

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
    parser.add_argument("--scenarios", type=int, default=600, help="tests per side (600)")
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
        for round_no in range(args.rounds):
            # A pause before each run lets the sandbox's processor finish the previous run's
            # asynchronous work (user.deleted events), so no side pays for the other's.
            time.sleep(PAUSE)
            plain_s.append(require_ok(run(plain_cmd, env, plain), "plain").seconds)
            time.sleep(PAUSE)
            harness_s.append(require_ok(run(harness_cmd, env, harnessed), "harness").seconds)
            note(f"round {round_no + 1}: plain {plain_s[-1]:.2f}s harness {harness_s[-1]:.2f}s")
        if args.profile:
            profiled = [sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "pytest"]
            require_ok(
                run([*profiled, *pytest[3:], *PLUGINS, "test_harnessed.py"], env, harnessed),
                "profile",
            )
    emit("overhead_scenarios", args.scenarios)
    emit("overhead_plain_seconds", median(plain_s), ".2f")
    emit("overhead_harness_seconds", median(harness_s), ".2f")
    emit("overhead_ratio", median(harness_s) / median(plain_s), ".3f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
