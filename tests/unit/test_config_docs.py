"""The profile examples of the README and docs/adapters.md say what the code does: each
snippet is loaded as written, and the README's example target line is the one a run prints
for the README's own staging profile."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from harness.config import ConfigError, Profile, describe_target, load_profile, provenance
from tests.conftest import REPO

# Under mutation testing the tree is mutmut's copy of the code, without the README and docs/:
# this checks the checkout's documents (what it proves of config, the other tests prove too).
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("HARNESS_MUTATION_RUN")), reason="checks the checkout's own documents"
)


def toml_blocks(document: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", (REPO / document).read_text(), re.S)


def the_block(document: str, first_line: str) -> str:
    (block,) = [b for b in toml_blocks(document) if b.startswith(first_line)]
    return block


@pytest.fixture
def readme_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The README's profiles, as ./environments.toml of a project."""
    monkeypatch.chdir(tmp_path)
    for variable in ("HARNESS_CONFIG", "HARNESS_ENV"):
        monkeypatch.delenv(variable, raising=False)
    path = tmp_path / "environments.toml"
    path.write_text(the_block("README.md", 'default = "local"'))
    return path


def load(name: str | None, path: Path | None = None) -> Profile:
    return load_profile(name, path, environ={}, declared={})


def test_the_readmes_profiles_are_written_once(readme_file: Path) -> None:
    local = load(None)  # default = "local"
    assert local.name == "local" and not local.is_protected
    assert local.aws_region == "us-east-1" and local.identity == "none"
    assert local.kinds == {
        "account": {"table": "accounts", "key": ["username"], "marker": "username"}
    }
    staging = load("staging")
    assert staging.is_protected and staging.allow_writes == ("POST /login",)
    assert staging.kinds["account"] == {
        "table": "staging-accounts",
        "key": ["username"],
        "marker": "username",
    }
    moved = (
        readme_file.read_text()
        .replace("protected = false", "")
        .replace("[defaults]", "[defaults]\nprotected = false")
    )
    readme_file.write_text(moved)
    with pytest.raises(ConfigError, match=r"would inherit protected = false from \[defaults\]"):
        load("staging")


def test_the_readmes_target_line_is_what_a_run_prints(readme_file: Path) -> None:
    text = " ".join((REPO / "README.md").read_text().split())
    shown = re.search(r"came from, e\.g\. `(harness: target \[staging\] [^`]*)`", text)
    assert shown is not None
    assert shown[1] == "harness: " + describe_target(provenance(load("staging")))


def test_the_adapter_guides_two_profiles_are_written_once(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    block = the_block("docs/adapters.md", "# environments.toml, with a staging profile too")
    path.write_text(block)
    local = load(None, path)
    assert local.name == "local" and not local.is_protected
    assert set(local.kinds) == {"account", "note"} and local.kinds["note"]["table"] == "notes"
    staging = load("staging", path)
    assert staging.is_protected and staging.identity == "aws-account"
    assert staging.allow_writes == ("POST /login",) and staging.aws_region == "us-east-1"
    assert staging.kinds["note"] == {
        "table": "staging-notes",
        "key": ["owner", "note_id"],
        "marker": "owner",
    }
    with pytest.raises(ConfigError, match=r"^\$HARNESS_PROTECTED would unprotect profile"):
        load_profile("staging", path, environ={"HARNESS_PROTECTED": "false"}, declared={})


def test_the_adapter_guides_production_pool_is_what_the_code_reads(tmp_path: Path) -> None:
    from harness.accounts.spec import AccountEntry

    path = tmp_path / "environments.toml"
    path.write_text(the_block("docs/adapters.md", "# environments.toml, production with a pool"))
    production = load(None, path)
    assert production.is_protected and production.allow_writes == ("POST /login",)
    assert production.lease_table == "prod-test-leases"
    pool = production.accounts
    assert pool is not None
    assert pool.entries == (
        AccountEntry("secretsmanager", "prod/smoke/reader-1"),
        AccountEntry("secretsmanager", "prod/smoke/reader-2"),
        AccountEntry("secretsmanager", "prod/smoke/reader-3"),
        AccountEntry("ssm", "/prod/smoke/reader-4"),
    )
    assert (pool.login, pool.auth, pool.token_key, pool.wait) == (
        "POST /login",
        "bearer",
        "access_token",
        60.0,
    )
