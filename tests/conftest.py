"""Shared fixtures of the project's own tests.

``live_sandbox`` starts one real sandbox (``python -m sandbox``) for the whole session through
the harness's own launcher and always stops it; ``sandbox_environ`` is the environment a
harness run needs to target it; ``aws`` is boto3 on its emulator, for looking at the
environment directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from harness.clients.aws import Aws
from harness.kinds.registry import load_profile
from harness.run.local_sandbox import LocalSandbox

# Property tests check properties, not speed: hypothesis's per-example deadline measures wall
# time, which a loaded 2-core CI machine stretches past 200 ms (a flaky failure, not a bug).
# Under mutation testing (tests/mutate.py sets HARNESS_MUTATION_RUN for mutmut's processes) the
# property tests run once per mutant: fewer examples keep `make mutate` within its budget
# (they still kill what they kill in the first examples; the full count runs in `make test`).
if os.environ.get("HARNESS_MUTATION_RUN"):
    settings.register_profile("project", max_examples=15, deadline=None)
else:
    settings.register_profile("project", deadline=None)
settings.load_profile("project")

REPO = Path(__file__).resolve().parents[1]
#: The reference service's event contracts (shipped with the sandbox).
CONTRACTS = REPO / "sandbox" / "service" / "chalicelib" / "contracts"
pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def live_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSandbox]:
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    sandbox = LocalSandbox.start(log)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="session")
def sandbox_environ(live_sandbox: LocalSandbox) -> dict[str, str]:
    """``os.environ`` plus the sandbox's exports, minus anything naming another target."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    environ.update(live_sandbox.exports)
    # The repository's profiles (the reference adapter's kinds) and its fixtures package,
    # wherever a test runs pytest or the CLI from.
    environ["HARNESS_CONFIG"] = str(REPO / "environments.toml")
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    return environ


@pytest.fixture(scope="session")
def aws(sandbox_environ: dict[str, str]) -> Aws:
    return Aws(load_profile("sandbox", REPO / "environments.toml", environ=sandbox_environ))
