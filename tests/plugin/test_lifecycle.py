"""The plugin's guarantees, proven with pytester runs against a real sandbox: cleanup on
failure, on setup error, with -x and on KeyboardInterrupt; distinct namespaces under -n 2;
a deliberate leak failing the run; configuration errors stopping it early."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.clients.aws import Aws
from harness.namespace import RunId
from harness.run import outcome
from tests.digest import items_mentioning

pytestmark = pytest.mark.e2e

CONFTEST = 'pytest_plugins = ["fixtures.users"]\n'


class Run:
    def __init__(self, result: pytest.RunResult, run_id: str, report_path: Path) -> None:
        self.result = result
        self.run_id = run_id
        self.report: dict[str, Any] = (
            json.loads(report_path.read_text()) if report_path.exists() else {}
        )

    @property
    def output(self) -> str:
        return self.result.stdout.str() + self.result.stderr.str()


@pytest.fixture
def harness_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, sandbox_environ: dict[str, str]
) -> Any:
    def run(test_source: str, *args: str, environ: dict[str, str] | None = None) -> Run:
        for key, value in {**sandbox_environ, **(environ or {})}.items():
            monkeypatch.setenv(key, value)
        run_id = str(RunId.generate())
        monkeypatch.setenv("HARNESS_RUN_ID", run_id)
        monkeypatch.setenv("HARNESS_STATE_DIR", str(pytester.path / ".harness"))
        pytester.makeconftest(CONFTEST)
        pytester.makepyfile(test_it=test_source)
        report = pytester.path / "report.json"
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--harness-report", str(report), *args
        )
        return Run(result, run_id, report)

    return run


def assert_nothing_left(aws: Aws, run: Run) -> None:
    assert items_mentioning(aws, run.run_id) == [], run.output
    assert run.report["resources"]["leaked"] == 0, run.output
    assert run.report["resources"]["created"] == run.report["resources"]["cleaned"], run.output


FAILING = """
def test_fails_after_creating(user_factory, token_factory):
    user = user_factory()
    token_factory(user)
    token_factory()
    assert False, "deliberate failure"
"""


def test_cleanup_runs_when_a_test_fails(harness_run: Any, aws: Aws) -> None:
    run = harness_run(FAILING)
    assert run.result.ret == 1
    assert "deliberate failure" in run.output
    assert "harness: HTTP transcript (redacted)" in run.output
    assert run.report["resources"]["created"] == 3
    assert_nothing_left(aws, run)


SETUP_ERROR = """
import pytest

@pytest.fixture
def half_built(user_factory):
    user_factory()
    raise RuntimeError("setup broke after creating a user")

def test_never_runs(half_built):
    pass
"""


def test_cleanup_runs_when_fixture_setup_fails(harness_run: Any, aws: Aws) -> None:
    run = harness_run(SETUP_ERROR)
    assert run.result.ret == 1
    run.result.assert_outcomes(errors=1)
    assert run.report["resources"]["created"] == 1
    assert_nothing_left(aws, run)


EXIT_FIRST = """
def test_one(user):
    assert False

def test_two(user):
    assert False
"""


def test_cleanup_runs_with_exitfirst(harness_run: Any, aws: Aws) -> None:
    run = harness_run(EXIT_FIRST, "-x")
    run.result.assert_outcomes(failed=1)
    assert run.report["resources"]["created"] == 1
    assert_nothing_left(aws, run)


INTERRUPTED = """
def test_interrupted(user_factory, token_factory):
    token_factory(user_factory())
    raise KeyboardInterrupt

def test_not_reached(user):
    pass
"""


def test_cleanup_runs_on_keyboard_interrupt(harness_run: Any, aws: Aws) -> None:
    run = harness_run(INTERRUPTED)
    assert run.result.ret == outcome.INTERRUPTED
    assert run.report["outcome"] == "interrupted"
    assert run.report["resources"]["created"] == 2
    assert_nothing_left(aws, run)


NAMESPACES = """
import pytest

@pytest.mark.parametrize("n", range(6))
def test_records_namespace(n, namespace, user, tmp_path_factory):
    out = tmp_path_factory.getbasetemp().parent.parent / f"ns-{n}.txt"
    out.write_text(f"{namespace}|{user.email}")
"""


def test_workers_share_the_run_id_but_not_the_namespace(
    harness_run: Any, aws: Aws, pytester: pytest.Pytester
) -> None:
    run = harness_run(NAMESPACES, "-n", "2")
    run.result.assert_outcomes(passed=6)
    seen = [p.read_text().split("|") for p in Path(pytester.path).parent.glob("**/ns-*.txt")]
    namespaces = {ns for ns, _ in seen}
    assert {ns.rsplit("-", 1)[1] for ns in namespaces} == {"gw0", "gw1"}
    assert {ns.rsplit("-", 1)[0] for ns in namespaces} == {run.run_id}
    assert len({email for _, email in seen}) == 6
    assert_nothing_left(aws, run)


LEAKY = """
def test_creates_behind_the_ledgers_back(api, namespace):
    response = api.post(
        "/users",
        json={"email": namespace.email("leak"), "name": "Leaky", "password": "leaky-pass-1"},
    )
    assert response.status_code == 201
"""


def test_a_deliberate_leak_fails_the_run_and_is_removed(harness_run: Any, aws: Aws) -> None:
    run = harness_run(LEAKY)
    run.result.assert_outcomes(passed=1)
    assert run.result.ret == outcome.LEAKED
    assert run.report["outcome"] == "leaked"
    assert "RESIDUE:" in run.output and "leaked user itest-" in run.output
    leaked = {leak["kind"]: leak for leak in run.report["leaked"]}
    # the user, and (if the processor got to it first) its welcome notification
    assert set(leaked) - {"notification"} == {"user"}
    assert leaked["user"]["email"].startswith(run.run_id)
    assert items_mentioning(aws, run.run_id) == []  # counted, then cleaned


def assert_one_clean_line(run: Run) -> None:
    """A run that cannot start says so once, in one line, with no pytest internals and no
    false "interrupted" (pytest.exit goes through pytest's interrupt path)."""
    assert len(run.result.stderr.lines) == 1, run.output
    assert run.result.stderr.lines[0].startswith("harness: "), run.output
    assert run.result.stdout.lines == [], run.output
    assert "interrupted" not in run.output and "_pytest" not in run.output


def test_unknown_profile_stops_before_any_test(harness_run: Any) -> None:
    run = harness_run("def test_x(user): pass", "--env", "nope")
    assert run.result.ret == outcome.CONFIG
    run_id = run.report["run_id"]
    assert run_id.startswith("itest-")  # the refused run's own id, as its other lines name it
    assert run.report == {
        "run_id": run_id,
        "exit_status": outcome.CONFIG,
        "outcome": "config",
        "error": run.result.stderr.lines[0].removeprefix("harness: "),
        "target": {},  # the profile did not load
        "tests": {},
    }
    assert_one_clean_line(run)
    assert "unknown environment profile 'nope'" in run.output
    assert "test_x" not in run.result.stdout.str()


def test_unreachable_environment_stops_before_any_test(harness_run: Any) -> None:
    run = harness_run("def test_x(user): pass", environ={"HARNESS_BASE_URL": "http://127.0.0.1:9"})
    assert run.result.ret == outcome.UNREACHABLE
    assert (run.report["outcome"], run.report["exit_status"]) == ("unreachable", 7)
    assert run.report["target"]["base_url"] == "http://127.0.0.1:9"
    assert run.report["target"]["base_url_source"] == "variable $HARNESS_BASE_URL"
    assert_one_clean_line(run)
    assert "cannot reach http://127.0.0.1:9/health" in run.output
    assert "Traceback" not in run.output


def test_wrong_environment_behind_the_url_stops_the_run(harness_run: Any) -> None:
    run = harness_run("def test_x(user): pass", environ={"HARNESS_ENVIRONMENT": "staging"})
    assert run.result.ret == outcome.UNREACHABLE
    assert_one_clean_line(run)
    assert "expects 'staging'" in run.output


def test_protected_target_runs_only_readonly_tests_and_says_so(harness_run: Any) -> None:
    source = """
import pytest

@pytest.mark.readonly
def test_reads(api):
    assert api.get("/health").status_code == 200

def test_writes(user):
    pass
"""
    run = harness_run(source, "-rs", environ={"HARNESS_PROTECTED": "true"})
    run.result.assert_outcomes(passed=1, skipped=1)
    assert run.report["skipped_by_protection"] == 1
    assert "protected target" in run.output


FROZEN_HEAP = """
import gc


def test_startup_heap_is_frozen(user):
    assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()
"""


def test_the_startup_heap_is_frozen_before_tests_run(harness_run: Any, aws: Aws) -> None:
    """``gc.freeze`` after collection (see harness.pytest_plugin.plugin): the cyclic
    collector then skips
    the imported modules and boto3's service models on every full collection."""
    run = harness_run(FROZEN_HEAP)
    assert run.result.ret == 0, run.output
    assert_nothing_left(aws, run)


def test_the_first_line_names_the_target_and_where_it_came_from(harness_run: Any) -> None:
    run = harness_run("def test_x(api): pass")
    first = run.result.stderr.lines[0]
    assert first.startswith("harness: target [sandbox] (default): http://127.0.0.1:"), run.output
    assert "(variable $HARNESS_BASE_URL)" in first
    assert run.report["target"]["base_url_source"] == "variable $HARNESS_BASE_URL"
    assert run.report["target"]["profile"] == "sandbox"
    assert run.result.ret == 0
    assert (run.report["outcome"], run.report["exit_status"]) == ("passed", 0)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_a_test_file_that_does_not_import_is_a_collection_error(
    harness_run: Any, workers: list[str]
) -> None:
    run = harness_run("import no_such_module_anywhere\n\ndef test_x(): pass\n", *workers)
    assert run.result.ret == outcome.COLLECTION_ERROR, run.output
    assert (run.report["outcome"], run.report["exit_status"]) == ("collection_error", 9)
    assert "interrupted — cleaning up" not in run.output
