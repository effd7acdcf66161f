"""``harness init [DIR]``: scaffold a test project for a team's own service.

Owns writing the starting files — ``environments.toml`` with a commented profile and one
declared kind, ``pytest.ini`` (markers come with the plugin; test paths here), ``conftest.py``,
``fixtures/__init__.py`` with an empty adapter module to grow, and ``suites/smoke/`` with one
read-only smoke test — so that ``harness doctor`` then says what to fill in. It never
overwrites a file that exists, and never talks to an environment.
"""

from __future__ import annotations

from pathlib import Path

ENVIRONMENTS = """\
# Environment profiles: one [table] per target. Any field can be overridden by HARNESS_<FIELD>
# (HARNESS_BASE_URL, ...); the profile is chosen with --env NAME or HARNESS_ENV.
# Credentials never go here: boto3's normal chain (AWS_PROFILE, env vars, roles).
# Next: fill in the values, then run `harness doctor --env local`.

[local]
base_url = "http://127.0.0.1:8000"     # the service's API root
identity = "none"                      # or "health" (GET health_path names `environment`)
# health_path = "/health"              #    or "aws-account" (with aws_account_id)
# identity_route = "GET /version"      #    or "route": a JSON field (or a header) of any
# identity_field = "env"               #    read names the environment
# environment = "local"
aws_region = "us-east-1"
aws_endpoint_url = "http://127.0.0.1:5000"   # unset for real AWS
protected = false                      # a profile that does not say is protected (read-only)
# allow_writes = ["POST /login"]       # write routes a protected profile may still send
# sensitive_keys = ["pin", "otp"]      # masked in bodies, queries, headers (with the defaults)
test_data_ttl = "2h"                   # the sweeper removes leftovers older than this
adapters = ["fixtures.kinds"]          # your kinds written in Python (optional)
# lease_table = "test-leases"          # a table (key Marker S, TTL ExpiresAt) for run leases

# Kinds declared without code: DynamoDB items your tests create; the harness deletes,
# sweeps and residue-checks them. `marker` is the attribute that carries the run namespace.
[local.kinds.account]
table = "accounts"
key = ["username"]
marker = "username"
"""

PYTEST_INI = """\
[pytest]
testpaths = suites
addopts = -ra --strict-markers
xfail_strict = true
"""

CONFTEST = '''\
"""Your adapter's fixtures, if any (the harness's own come with its pytest plugin)."""

pytest_plugins: list[str] = []
'''

FIXTURES_INIT = '''\
"""This project's adapter: resource kinds in code (kinds.py) and fixtures."""
'''

KINDS = '''\
"""Resource kinds written in Python, for what a declared kind cannot express.

See docs/adapters.md of env-harness: subclass harness.adapter.Kind and implement
marker(ids), delete(ids) and find(prefix).
"""
'''

SMOKE = '''\
"""Smoke tests: fast checks that the deployed service answers."""

import pytest


@pytest.mark.smoke
@pytest.mark.readonly
def test_the_service_answers(api):
    response = api.get("/")
    assert response.status_code < 500


@pytest.mark.smoke
def test_an_account_is_created_and_cleaned(api, ledger, namespace):
    name = namespace.name("acct")
    ledger.create(
        "account",
        {"username": name},
        lambda: api.post("/register", json={"username": name, "password": "Pw-" + name}).json(),
    )
'''

FILES = {
    "environments.toml": ENVIRONMENTS,
    "pytest.ini": PYTEST_INI,
    "conftest.py": CONFTEST,
    "fixtures/__init__.py": FIXTURES_INIT,
    "fixtures/kinds.py": KINDS,
    "suites/__init__.py": "",
    "suites/smoke/__init__.py": "",
    "suites/smoke/test_smoke.py": SMOKE,
}


def scaffold(directory: Path) -> tuple[list[Path], list[Path]]:
    """(written, skipped because they exist)."""
    written, skipped = [], []
    for relative, text in FILES.items():
        path = directory / relative
        if path.exists():
            skipped.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written, skipped


def run(directory: str) -> int:
    target = Path(directory)
    written, skipped = scaffold(target)
    for path in written:
        print(f"wrote {path}")
    for path in skipped:
        print(f"kept  {path} (exists)")
    print(
        f"next: edit {target / 'environments.toml'}, then `cd {target} && harness doctor "
        f"--env local`, then `harness run --env local`"
    )
    return 0
