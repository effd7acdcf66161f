"""Runs with memory, end to end against a real sandbox (issue 22's proof): four runs of a
small suite, with the history in SQLite and in the emulator's S3 (the bucket the sandbox
provisions), classify exactly — one test breaks in run 2 and is mended in run 4, one fails
its first attempt every run and passes on its retry — while each run leaves the environment's
digest as it found it and the retried test sees, before its second attempt, a digest equal to
the one before the run (the failed attempt's data already gone); a browser reads the trends;
two concurrent runs on two workers each lose no record; two shards of one run merge into one
report with one residue check and one alert; a quarantined failure passes the run until its
date; a store that cannot be reached is a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.clients.aws import Aws
from harness.history.store import S3Store, SqliteStore, history_s3_client
from harness.namespace import RunId
from sandbox.provision import ResourceNames
from tests.browser import chromium
from tests.digest import digest, items_mentioning, snapshot
from tests.plugin.test_reports import Receiver

pytestmark = pytest.mark.e2e

BUCKET = ResourceNames().test_history_bucket

SUITE = """
import json
import os
from pathlib import Path

RUN = int(os.environ["RUN_N"])
OUT = Path(os.environ["OUT"])


def environment_digest(aws):
    from tests.digest import digest, snapshot

    state = snapshot(aws)
    state["tables"].pop(os.environ["HARNESS_LEASE_TABLE"], None)  # the run's own lease
    return digest(state)


def test_steady(api, user):
    assert api.get(f"/users/{user.uid}", auth=user.auth).status_code == 200


def test_breaks_in_runs_2_and_3(api, user):
    assert api.get(f"/users/{user.uid}", auth=user.auth).status_code == 200
    assert RUN not in (2, 3), "the service broke this in runs 2 and 3"


def test_fails_its_first_attempt(api, user_factory, harness_session, request):
    from harness.pytest_plugin.attempts import ATTEMPT
    from tests.digest import items_mentioning

    attempt = request.node.stash[ATTEMPT]
    mine = OUT / f"run{RUN}.json"
    if attempt > 1:  # before it creates anything: is attempt 1's data gone?
        first = json.loads(mine.read_text())
        first["digest_before_retry"] = environment_digest(harness_session.aws)
        first["left_by_attempt_1"] = items_mentioning(harness_session.aws, first["email"])
        mine.write_text(json.dumps(first))
    user = user_factory()
    assert api.get(f"/users/{user.uid}", auth=user.auth).status_code == 200
    if attempt == 1:
        mine.write_text(json.dumps({"email": user.email}))
        raise AssertionError("fails its first attempt, every run")
"""
STEADY, BREAKS, RETRIED = (
    "test_suite.py::test_steady",
    "test_suite.py::test_breaks_in_runs_2_and_3",
    "test_suite.py::test_fails_its_first_attempt",
)
EXPECTED = {
    1: {STEADY: "new-test", BREAKS: "new-test", RETRIED: "flaky"},
    2: {STEADY: "passing", BREAKS: "new-failure", RETRIED: "flaky"},
    3: {STEADY: "passing", BREAKS: "still-failing", RETRIED: "flaky"},
    4: {STEADY: "passing", BREAKS: "fixed", RETRIED: "flaky"},
}


def environment_digest(aws: Aws, leases: str) -> str:
    state = snapshot(aws)
    state["tables"].pop(leases, None)
    return digest(state)


def suite_folder(tmp_path: Path, source: str = SUITE) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "conftest.py").write_text('pytest_plugins = ["fixtures.users"]\n')
    (folder / "test_suite.py").write_text(source)
    return folder


def start_run(
    environ: dict[str, str], folder: Path, report: Path, *args: str, **extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--report", str(report), *args],
        cwd=folder,
        env={**environ, "HARNESS_STATE_DIR": str(folder / ".harness"), **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def harness_run(
    environ: dict[str, str], folder: Path, report: Path, *args: str, **extra: str
) -> tuple[int, str, dict[str, Any]]:
    process = start_run(environ, folder, report, *args, **extra)
    output = process.communicate(timeout=300)[0]
    return process.returncode, output, json.loads(report.read_text())


@pytest.mark.parametrize("kind", ["sqlite", "s3"])
def test_four_runs_classify_exactly_retry_safely_and_leave_the_environment_as_found(
    kind: str, sandbox_environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    folder = suite_folder(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    store_spec = (
        str(tmp_path / "history.sqlite") if kind == "sqlite" else f"s3://{BUCKET}/{tmp_path.name}"
    )
    leases = sandbox_environ["HARNESS_LEASE_TABLE"]
    run_ids = []
    for n in (1, 2, 3, 4):
        before = environment_digest(aws, leases)
        html = tmp_path / f"report{n}.html"
        status, output, report = harness_run(
            sandbox_environ, folder, tmp_path / f"report{n}.json",
            "--retries", "1", f"--history={store_spec}", f"--html={html}",
            RUN_N=str(n), OUT=str(out),
        )  # fmt: skip
        run_ids.append(report["run_id"])
        assert status == (1 if n in (2, 3) else 0), output[-3000:]
        classes = {r["nodeid"]: r["classification"] for r in report["results"]}
        assert classes == EXPECTED[n], output[-3000:]
        retried = next(r for r in report["results"] if r["nodeid"] == RETRIED)
        assert retried["attempts"] == 2 and retried["outcome"] == "passed"
        # the failed attempt's data was gone before the retry created anything
        seen = json.loads((out / f"run{n}.json").read_text())
        assert seen["left_by_attempt_1"] == [], seen
        assert seen["digest_before_retry"] == before
        assert environment_digest(aws, leases) == before, f"run {n} changed the environment"
        assert report["history"]["runs_considered"] == n - 1
        assert report["history"]["store"].startswith("s3://" if kind == "s3" else "sqlite:")
        assert report["warnings"] == []
    breaks = {n: report for n, report in enumerate(reports(tmp_path), 1)}
    still = next(r for r in breaks[3]["results"] if r["nodeid"] == BREAKS)
    assert still["failing_since"] == run_ids[1]
    assert breaks[3]["history"]["still_failing"] == [BREAKS]
    assert breaks[4]["history"]["fixed"] == [BREAKS]
    assert [r["flake_rate"] for r in breaks[4]["results"] if r["nodeid"] == RETRIED] == [1.0]
    # the store holds the four runs, each with its three tests
    store = (
        SqliteStore(Path(store_spec))
        if kind == "sqlite"
        else S3Store(store_spec, history_s3_client(aws))
    )
    recorded = store.runs("sandbox")
    assert sorted(r.run_id for r in recorded) == sorted(run_ids)
    assert all(len(r.results) == 3 for r in recorded)
    if kind == "sqlite":
        trends_in_a_browser(tmp_path / "report4.html", run_ids, tmp_path)
        listing = subprocess.run(
            [sys.executable, "-m", "harness", "history", "--history", store_spec, "--json"],
            cwd=folder, env=sandbox_environ, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert listing.returncode == 0, listing.stderr
        rows = {r["nodeid"]: r for r in json.loads(listing.stdout)["tests"]}
        assert rows[BREAKS]["pass_rate"] == 0.5 and rows[RETRIED]["flake_rate"] == 1.0
        assert rows[STEADY]["runs"] == 4 and rows[STEADY]["failing_since"] is None


def reports(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads((tmp_path / f"report{n}.json").read_text()) for n in (1, 2, 3, 4)]


def trends_in_a_browser(html: Path, run_ids: list[str], tmp_path: Path) -> None:
    """Headless Chromium loads the fourth run's report: the four charts are drawn and carry
    the four runs' data."""
    with chromium(tmp_path) as browser:
        browser.set_window_size(1200, 2200)
        browser.get(html.as_uri())
        charts = browser.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => ({"
            "id: g.id, drawn: g.querySelectorAll('.main-svg').length,"
            "data: g.data.map(t => ({name: t.name, x: t.x, y: t.y}))}))"
        )
        bars = browser.execute_script(
            "return document.querySelectorAll('#harness-trend-runs .bars path').length"
        )
        fetched = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        verdicts = [
            row.text for row in browser.find_elements("css selector", "table.harness-history tr")
        ]
        folder = os.environ.get("HARNESS_SCREENSHOTS")
        if folder:  # docs/history-trends.png is made this way
            section = browser.find_element("css selector", ".harness-history-section")
            section.screenshot(str(Path(folder) / "history-trends.png"))
    by_id = {chart["id"]: chart for chart in charts}
    assert set(by_id) == {
        "harness-trend-runs", "harness-trend-p95", "harness-trend-slowest",
        "harness-trend-flakiest",
    }  # fmt: skip
    assert all(chart["drawn"] > 0 for chart in charts) and bars >= 8
    assert [url for url in fetched if not url.startswith(("file:", "data:", "blob:"))] == []
    runs = {t["name"]: t for t in by_id["harness-trend-runs"]["data"]}
    assert runs["passed"]["x"] == run_ids
    assert runs["passed"]["y"] == [2, 1, 1, 2]
    assert runs["failed"]["y"] == [0, 1, 1, 0]
    assert runs["flaky"]["y"] == [1, 1, 1, 1]
    p95 = {t["name"]: t for t in by_id["harness-trend-p95"]["data"]}
    assert len(p95["POST /users"]["y"]) == 4 and all(v > 0 for v in p95["POST /users"]["y"])
    flakiest = by_id["harness-trend-flakiest"]["data"][0]
    assert flakiest["y"] == [RETRIED] and flakiest["x"] == [1]
    slowest = by_id["harness-trend-slowest"]["data"][0]["y"]
    assert sorted(slowest) == sorted([STEADY, BREAKS, RETRIED])
    assert any(BREAKS in row and "fixed" in row for row in verdicts), verdicts


MANY = """
import pytest


@pytest.mark.parametrize("n", range(6))
def test_user(api, user, n):
    assert api.get(f"/users/{user.uid}", auth=user.auth).status_code == 200
"""


@pytest.mark.parametrize("kind", ["sqlite", "s3"])
def test_two_concurrent_runs_on_two_workers_each_lose_no_record(
    kind: str, sandbox_environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    spec = str(tmp_path / "shared.sqlite") if kind == "sqlite" else f"s3://{BUCKET}/{tmp_path.name}"
    runs = []
    for side in ("a", "b"):
        folder = suite_folder(tmp_path / side, MANY)
        runs.append(
            start_run(
                sandbox_environ, folder, tmp_path / f"{side}.json", "-n", "2", f"--history={spec}"
            )
        )
    outputs = [p.communicate(timeout=300)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    ids = [json.loads((tmp_path / f"{side}.json").read_text())["run_id"] for side in "ab"]
    store = SqliteStore(Path(spec)) if kind == "sqlite" else S3Store(spec, history_s3_client(aws))
    recorded = {r.run_id: r for r in store.runs("sandbox")}
    assert sorted(recorded) == sorted(ids)
    assert all(len(r.results) == 6 and r.tests["passed"] == 6 for r in recorded.values())


SHARDED = """
import pytest


@pytest.mark.parametrize("n", range(8))
def test_user(api, user, n):
    assert api.get(f"/users/{user.uid}", auth=user.auth).status_code == 200
"""


def test_two_shards_of_one_run_merge_into_one_report_one_residue_check_one_alert(
    sandbox_environ: dict[str, str], aws: Aws, tmp_path: Path
) -> None:
    folder = suite_folder(tmp_path, SHARDED)
    run_id = str(RunId.generate())
    spec = str(tmp_path / "history.sqlite")
    shards = [
        start_run(
            sandbox_environ, folder, tmp_path / f"shard{i}.json", "--shard", f"{i}/2",
            f"--history={spec}", f"--junitxml={tmp_path / f'shard{i}.xml'}",
            HARNESS_RUN_ID=run_id,
        )
        for i in (1, 2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=300)[0] for p in shards]
    assert [p.returncode for p in shards] == [0, 0], outputs
    parts = [json.loads((tmp_path / f"shard{i}.json").read_text()) for i in (1, 2)]
    assert [p["tests"]["passed"] for p in parts] == [4, 4]  # unknown tests spread evenly
    names = [{r["nodeid"] for r in p["results"]} for p in parts]
    assert not names[0] & names[1] and len(names[0] | names[1]) == 8
    receiver = Receiver()
    try:
        merged = subprocess.run(
            [
                sys.executable, "-m", "harness", "merge",
                str(tmp_path / "shard1.json"), str(tmp_path / "shard2.json"),
                "--report", str(tmp_path / "merged.json"),
                "--junitxml", str(tmp_path / "merged.xml"),
                "--summary", str(tmp_path / "merged.md"),
                "--html", str(tmp_path / "merged.html"),
                "--history", spec,
                "--alert", f"webhook={receiver.url}", "--alert-on", "always",
            ],
            cwd=folder,
            env={**sandbox_environ, "HARNESS_STATE_DIR": str(folder / ".harness")},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        receiver.close()
    assert merged.returncode == 0, merged.stdout + merged.stderr
    report = json.loads((tmp_path / "merged.json").read_text())
    assert report["run_id"] == run_id and report["exit_status"] == 0
    assert report["tests"]["passed"] == 8 == sum(p["tests"]["passed"] for p in parts)
    assert report["resources"]["created"] == sum(p["resources"]["created"] for p in parts)
    assert sorted(r["nodeid"] for r in report["results"]) == sorted(names[0] | names[1])
    assert report["residue"] == {"checked": "whole run", "clean": True, "found": 0}
    assert merged.stdout.count(f"residue check of run {run_id}") == 1
    assert len(receiver.bodies) == 1 and run_id in receiver.bodies[0]["text"]
    assert (tmp_path / "merged.xml").read_text().count("<testcase ") == 8
    assert "8 |" in (tmp_path / "merged.md").read_text()
    page = (tmp_path / "merged.html").read_text()
    assert page.count('class="harness-result ') == 8 and "harness-history-section" in page
    assert items_mentioning(aws, run_id) == []
    # the second time, each shard's tests are chosen by the durations the first recorded
    again = [
        start_run(
            sandbox_environ, folder, tmp_path / f"again{i}.json", "--shard", f"{i}/2",
            f"--history={spec}", HARNESS_RUN_ID=str(RunId.generate()),
        )
        for i in (1, 2)
    ]  # fmt: skip
    assert [p.communicate(timeout=300)[0] and p.returncode for p in again] == [0, 0]


FAILING = """
def test_known_bad(api):
    assert api.get("/health").status_code == 500, "known bug"


def test_fine(api):
    assert api.get("/health").status_code == 200
"""


def test_a_quarantined_failure_passes_the_run_until_its_date_and_a_lost_store_is_a_warning(
    sandbox_environ: dict[str, str], tmp_path: Path
) -> None:
    folder = suite_folder(tmp_path, FAILING)
    nodeid = "test_suite.py::test_known_bad"
    added = subprocess.run(
        [sys.executable, "-m", "harness", "quarantine", "add", nodeid,
         "--until", "2999-12-31", "--reason", "issue 99"],
        cwd=folder, env=sandbox_environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert (folder / "quarantine.toml").is_file()
    status, output, report = harness_run(
        sandbox_environ, folder, tmp_path / "r1.json",
        "--history=s3://no-such-history-bucket/x",
    )  # fmt: skip
    assert status == 0, output[-3000:]
    assert report["outcome"] == "passed" and report["tests"]["failed"] == 1
    (entry,) = [r for r in report["results"] if r["nodeid"] == nodeid]
    assert entry["quarantined"] is True and entry["outcome"] == "failed"
    assert "QUARANTINED" in output
    assert report["history"] is None and report["results"][0]["classification"] is None
    assert any("history store cannot be read" in w for w in report["warnings"])
    assert any("cannot be written" in w for w in report["warnings"])
    # the date passed: the failure fails the run again, and says why
    text = (folder / "quarantine.toml").read_text().replace("2999-12-31", "2000-01-01")
    (folder / "quarantine.toml").write_text(text)
    status, output, report = harness_run(sandbox_environ, folder, tmp_path / "r2.json")
    assert status == 1, output[-3000:]
    assert f"quarantine of {nodeid} ended 2000-01-01" in output


REFUSED = """
import pytest


@pytest.mark.readonly
@pytest.mark.flaky(retries=2)
def test_writes_where_it_may_not(api):
    api.post("/users", json={"email": "x@example.test", "name": "x", "password": "p"})
"""


def test_a_protected_refusal_is_never_retried(
    sandbox_environ: dict[str, str], tmp_path: Path
) -> None:
    folder = suite_folder(tmp_path, REFUSED)
    profiles = tmp_path / "guarded.toml"
    profiles.write_text(
        "[guarded]\n"
        f'base_url = "{sandbox_environ["HARNESS_BASE_URL"]}"\n'
        'environment = "sandbox"\n'
        f'aws_endpoint_url = "{sandbox_environ["HARNESS_AWS_ENDPOINT_URL"]}"\n'
        'aws_region = "us-east-1"\n'
    )
    status, output, report = harness_run(
        sandbox_environ, folder, tmp_path / "r.json", "--env", "guarded",
        HARNESS_CONFIG=str(profiles), HARNESS_LEASE_TABLE="",
    )  # fmt: skip
    assert status == 1, output[-3000:]
    (result,) = report["results"]
    assert result["attempts"] == 1 and result["outcome"] == "failed"
    assert "attempt 1 failed on a protected refusal: not retried" in output
    assert " rerun" not in output.splitlines()[-1]
