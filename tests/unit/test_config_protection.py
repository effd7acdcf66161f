"""A protected profile is loosened only by its file (issue 20, item 3): a HARNESS_* variable
or an option may tighten ``protected`` and ``allow_writes`` — protect an open profile, narrow
the routes — but an attempt to loosen a profile the file protects is refused when the
profile loads, with one line naming the variable; and the target line says whether the
target is protected and where that came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.cli.main import main
from harness.config import ConfigError, Profile, describe_target, load_profile, provenance

FILE = """\
[prod]
base_url = "https://api.example.com"
protected = true
allow_writes = ["POST /login", "POST /sessions/{id}"]

[staging]
base_url = "https://api.staging.example.com"

[qa]
base_url = "https://api.qa.example.com"
protected = false

[sandbox]
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "environments.toml"
    file.write_text(FILE)
    return file


def load(path: Path, name: str, environ: dict[str, str], **overrides: Any) -> Profile:
    return load_profile(name, path, overrides or None, environ=environ, declared={})


def refusal(path: Path, name: str, environ: dict[str, str], **overrides: Any) -> str:
    with pytest.raises(ConfigError) as error:
        load(path, name, environ, **overrides)
    return str(error.value)


# -- loosening is refused ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["false", "0", "no", "off"])
def test_a_variable_cannot_unprotect_a_profile_the_file_protects(path: Path, value: str) -> None:
    assert refusal(path, "prod", {"HARNESS_PROTECTED": value}) == (
        f"$HARNESS_PROTECTED would unprotect profile [prod], which {path} protects "
        "(protected = true): only the file can loosen a protected profile. Unset "
        "HARNESS_PROTECTED, or write protected = false under [prod] in "
        f"{path} if it really is a test environment"
    )


def test_a_profile_that_does_not_say_is_protected_by_the_file_too(path: Path) -> None:
    message = refusal(path, "staging", {"HARNESS_PROTECTED": "false"})
    assert message.startswith(
        f"$HARNESS_PROTECTED would unprotect profile [staging], which {path} protects "
        "(it does not say: protected): only the file can loosen"
    )


def test_a_variable_cannot_add_routes_to_allow_writes(path: Path) -> None:
    environ = {"HARNESS_ALLOW_WRITES": "POST /login, post /users, DELETE /users/{id}"}
    assert refusal(path, "prod", environ) == (
        f"$HARNESS_ALLOW_WRITES would let POST /users, DELETE /users/{{id}} through on profile "
        f"[prod], which {path} protects (its allow_writes: POST /login, POST /sessions/{{id}}): "
        "only the file can loosen a protected profile. Unset HARNESS_ALLOW_WRITES or name only "
        f"routes the file allows, or add them to allow_writes under [prod] in {path}"
    )
    message = refusal(path, "staging", {"HARNESS_ALLOW_WRITES": "POST /login"})
    assert "would let POST /login through on profile [staging]" in message
    assert "(its allow_writes: none)" in message


def test_an_option_cannot_loosen_either(path: Path) -> None:
    assert refusal(path, "prod", {}, protected=False) == (
        f"the option for protected would unprotect profile [prod], which {path} protects "
        "(protected = true): only the file can loosen a protected profile. Drop the option, "
        f"or write protected = false under [prod] in {path} if it really is a test environment"
    )
    message = refusal(path, "prod", {}, allow_writes=["PUT /x"])
    assert message.startswith("the option for allow_writes would let PUT /x through on profile")
    assert ". Drop the option or name only routes the file allows" in message


def test_a_sandbox_profile_the_file_protects_is_protected_too(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text("[sandbox]\nprotected = true\n")
    assert "would unprotect profile [sandbox]" in refusal(
        path, "sandbox", {"HARNESS_PROTECTED": "false"}
    )


# -- tightening is allowed ---------------------------------------------------------------------


def test_a_variable_may_narrow_the_routes_but_never_widen_them(path: Path) -> None:
    narrower = load(path, "prod", {"HARNESS_ALLOW_WRITES": "post /login"})
    assert narrower.allow_writes == ("POST /login",)
    assert narrower.sources["allow_writes"] == "$HARNESS_ALLOW_WRITES"
    same = {"HARNESS_ALLOW_WRITES": "POST /sessions/{id}, POST /login", "HARNESS_PROTECTED": "1"}
    assert load(path, "prod", same).allow_writes == ("POST /sessions/{id}", "POST /login")
    assert load(path, "prod", {}, protected=True, allow_writes=[]).allow_writes == ()
    # the same pattern written another way is another route: refused
    widened = {"HARNESS_ALLOW_WRITES": "POST /sessions/*"}
    assert "would let POST /sessions/* through" in refusal(path, "prod", widened)


def test_a_variable_may_protect_an_open_profile_but_never_open_a_protected_one(
    path: Path,
) -> None:
    environ = {"HARNESS_PROTECTED": "true", "HARNESS_ALLOW_WRITES": "POST /users"}
    bare = path.parent / "none.toml"  # the sandbox profile, absent from any file
    for file, name in ((path, "qa"), (path, "sandbox"), (bare, "sandbox")):
        profile = load(file, name, environ)
        assert profile.is_protected and profile.allow_writes == ("POST /users",)
        assert not load(file, name, {"HARNESS_PROTECTED": "false"}).is_protected
    assert not load(path, "qa", {}, protected=False).is_protected
    for name in ("prod", "staging"):
        assert "would unprotect" in refusal(path, name, {"HARNESS_PROTECTED": "off"})


# -- the target line says it -------------------------------------------------------------------


def test_the_target_says_whether_it_is_protected_and_why(path: Path) -> None:
    prod = provenance(load(path, "prod", {}))
    assert (prod["protected"], prod["protected_source"]) == (True, f"file {path}")
    assert prod["allow_writes"] == ["POST /login", "POST /sessions/{id}"]
    assert prod["allow_writes_source"] == f"file {path}"
    assert describe_target(prod).endswith(
        f", protected (file {path}), writes allowed: POST /login, POST /sessions/{{id}} "
        f"(file {path})"
    )
    staging = provenance(load(path, "staging", {}))
    assert staging["protected_source"] == "default: not the sandbox"
    assert staging["allow_writes"] == [] and staging["allow_writes_source"] == ""
    assert describe_target(staging).endswith(", protected (default: not the sandbox)")
    qa = provenance(load(path, "qa", {"HARNESS_ALLOW_WRITES": "POST /x"}))
    assert (qa["protected"], qa["allow_writes"]) == (False, [])  # open: every write goes
    assert describe_target(qa).endswith(f", unprotected (file {path})")
    tightened = load(
        path, "sandbox", {"HARNESS_PROTECTED": "yes", "HARNESS_ALLOW_WRITES": "PUT /a"}
    )
    assert describe_target(provenance(tightened)).endswith(
        ", protected (variable $HARNESS_PROTECTED), writes allowed: PUT /a "
        "(variable $HARNESS_ALLOW_WRITES)"
    )
    sandbox = provenance(load(path, "sandbox", {}))
    assert sandbox["protected_source"] == "default: the sandbox profile"
    flagged = provenance(load(path, "qa", {}, protected=True))
    assert flagged["protected_source"] == "flag"


# -- the commands: one line, exit 8, nothing touched ------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "--env", "prod", "--yes"],
        ["recover", "--env", "prod"],
        ["residue", "itest-20261127t172503-k3f9", "--env", "prod"],
    ],
)
def test_the_commands_refuse_with_one_line_and_exit_8(
    path: Path,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(path.parent)
    for variable in ("HARNESS_CONFIG", "HARNESS_ENV", "HARNESS_STATE_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HARNESS_PROTECTED", "false")
    assert main(argv) == 8
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("harness: $HARNESS_PROTECTED would unprotect profile [prod]"), err
    assert not (path.parent / ".harness").exists()
