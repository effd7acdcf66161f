"""Where the profiles file and the state folder are found (harness/project.py, config, the
journal's default state dir, the run's start): from pytest's rootdir or the current folder
upward, so `cd suites && harness run` uses the project's environments.toml and keeps its
journals in the project root's .harness, where `harness recover` from the root finds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import project
from harness.cleanup.journal import default_state_dir
from harness.config import load_profile, profiles_file
from harness.kinds.registry import load_profile as load_with_adapters
from harness.run.lifecycle import TargetOptions, resolve_profile, start_worker

PROFILE = '[local]\nbase_url = "https://local.example"\nprotected = false\n'


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project: environments.toml at its root, a subfolder two levels deep; no variable
    names a file or a state folder."""
    top = tmp_path / "proj"
    (top / "suites" / "smoke").mkdir(parents=True)
    (top / "environments.toml").write_text(PROFILE)
    for variable in ("HARNESS_CONFIG", "HARNESS_STATE_DIR", "HARNESS_ENV"):
        monkeypatch.delenv(variable, raising=False)
    return top


def test_the_nearest_file_is_found_in_the_folder_or_above(root: Path, tmp_path: Path) -> None:
    assert project.find_profiles(root) == root / "environments.toml"
    assert project.find_profiles(root / "suites" / "smoke") == root / "environments.toml"
    (root / "suites" / "environments.toml").mkdir()  # a folder of that name is not the file
    assert project.find_profiles(root / "suites" / "smoke") == root / "environments.toml"
    nearer = root / "suites" / "smoke" / "environments.toml"
    nearer.write_text(PROFILE)
    assert project.find_profiles(root / "suites" / "smoke") == nearer
    assert project.find_profiles(tmp_path) is None


def test_a_relative_start_is_found_from_the_current_folder(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root / "suites")
    assert project.find_profiles("smoke") == root / "environments.toml"


def test_the_file_named_wins_then_the_variable_then_the_search(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = root / "suites" / "smoke"
    monkeypatch.chdir(sub)
    named = {"HARNESS_CONFIG": "other.toml"}
    assert project.profiles_file("mine.toml", named, sub) == Path("mine.toml")
    assert project.profiles_file(None, named, sub) == Path("other.toml")
    assert project.profiles_file("", named) == Path("other.toml")
    assert project.profiles_file(None, {"HARNESS_CONFIG": ""}) == root / "environments.toml"
    # found above the current folder: shown absolute; inside it: as the user would type it
    assert project.profiles_file(None, {}) == root / "environments.toml"
    monkeypatch.chdir(root)
    assert project.profiles_file(None, {}) == Path("environments.toml")
    assert project.profiles_file(None, {}, sub) == Path("environments.toml")
    assert profiles_file(None, {}) == Path("environments.toml")  # config's, the same rule


def test_without_a_file_anywhere_the_start_folder_would_hold_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert project.profiles_file(None, {}) == Path("environments.toml")
    assert project.profiles_file(None, {}, tmp_path / "a") == Path("a/environments.toml")
    assert project.project_root(None, {}) == Path(".")
    assert project.project_root(None, {}, tmp_path / "a") == Path("a")


def test_the_project_root_is_the_found_files_folder_unless_a_file_is_named(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = root / "suites" / "smoke"
    monkeypatch.chdir(sub)
    assert project.project_root(None, {}) == root
    assert project.project_root(None, {}, root / "suites") == root
    assert project.project_root("x.toml", {}) == Path(".")
    assert project.project_root(None, {"HARNESS_CONFIG": "x.toml"}, root) == root
    assert project.project_root(None, {"HARNESS_CONFIG": ""}) == root


def test_the_state_folder_is_beside_the_profiles_file(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root / "suites" / "smoke")
    assert default_state_dir() == root / ".harness"
    assert default_state_dir(root / "elsewhere") == root / "elsewhere" / ".harness"
    assert default_state_dir("") == root / ".harness"
    monkeypatch.setenv("HARNESS_CONFIG", str(root / "environments.toml"))
    assert default_state_dir() == Path(".harness")  # a named file: the current folder
    monkeypatch.setenv("HARNESS_STATE_DIR", "/tmp/state")
    assert default_state_dir() == Path("/tmp/state")
    assert default_state_dir(root) == Path("/tmp/state")
    monkeypatch.chdir(root)
    monkeypatch.delenv("HARNESS_STATE_DIR")
    monkeypatch.delenv("HARNESS_CONFIG")
    assert default_state_dir() == Path(".harness")


def test_a_profile_loaded_from_a_subfolder_reads_the_projects_file(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root / "suites")
    profile = load_profile(None, None, environ={}, declared={})
    assert profile.name == "local" and profile.base_url == "https://local.example"
    assert profile.config_file == str(root / "environments.toml")
    assert profile.project_root == str(root)
    assert profile.config_dir == str(root.resolve())
    from_rootdir = load_profile(None, None, environ={}, declared={}, start=root / "suites")
    assert from_rootdir.config_file == str(root / "environments.toml")
    adapters = load_with_adapters(None, None, environ={}, start=root / "suites")
    assert adapters.name == "local" and adapters.project_root == str(root)


def test_a_named_file_keeps_the_state_in_the_start_folder(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root / "suites")
    named = root / "environments.toml"
    profile = load_profile(None, named, environ={}, declared={}, start=root / "suites")
    assert profile.config_file == str(named) and profile.project_root == "."
    by_variable = load_profile(None, None, environ={"HARNESS_CONFIG": str(named)}, declared={})
    assert by_variable.config_file == str(named) and by_variable.project_root == "."


def test_a_run_started_in_a_subfolder_resolves_from_pytests_rootdir(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin passes pytest's rootdir: each worker finds the project's file and keeps its
    journal in the project root, whatever the current folder."""
    elsewhere = root.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    options = TargetOptions(root=str(root / "suites"))
    assert resolve_profile(options, environ={}).name == "local"
    state = start_worker(options, "itest-20261127t172503-k3f9", 7, "gw1")
    assert state.profile.name == "local" and state.profile.base_url == "https://local.example"
    assert state.state_dir == root / ".harness"
    assert resolve_profile(TargetOptions(), environ={}).name == "sandbox"  # from elsewhere
