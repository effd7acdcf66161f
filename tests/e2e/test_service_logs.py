"""From red to root cause, against a real sandbox (SNS/SQS; the Kafka variant is in
test_kafka_events.py): a failed test's JSON report entry carries its trace id and the
service's own log lines for it — read from CloudWatch Logs on the emulator, where the
service's functions log as Lambda's do — in every artifact, secrets masked; a passing run
makes no lookup; logs that cannot be read are said once and fail nothing; a protected
profile reads them too; the HTML report's events timeline is found by a real browser."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.namespace import RunId
from tests.browser import chromium
from tests.plugin.test_reports import Receiver

pytestmark = pytest.mark.e2e

CONFTEST = 'pytest_plugins = ["fixtures.users"]\n'
HEX32 = re.compile(r"^[0-9a-f]{32}$")


class Run:
    def __init__(self, result: pytest.RunResult, out: Path) -> None:
        self.result = result
        self.out = out
        path = out / "report.json"
        self.report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    @property
    def output(self) -> str:
        return self.result.stdout.str() + self.result.stderr.str()


@pytest.fixture
def run_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, sandbox_environ: dict[str, str]
) -> Any:
    def run(source: str, *args: str, environ: dict[str, str] | None = None) -> Run:
        for key, value in {**sandbox_environ, **(environ or {})}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
        monkeypatch.setenv("HARNESS_RUN_ID", str(RunId.generate()))
        monkeypatch.setenv("HARNESS_STATE_DIR", str(pytester.path / ".harness"))
        pytester.makeconftest(CONFTEST)
        pytester.makepyfile(test_it=source)
        out = pytester.path / "out"
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--harness-report", str(out / "report.json"), *args
        )
        return Run(result, out)

    return run


FAILING = """
import os

from harness.adapter import UidTokenAuth


def test_reads_someone_else(api, user):
    login = api.post("/login", json={"email": user.email, "password": user.password})
    token = login.json()["token"]
    auth = UidTokenAuth(user.uid, token)
    api.get(f"/users/{token}", auth=auth)  # a secret in a path: the service logs the path
    other = f"/users/{user.uid + 1}"
    with open(os.environ["OUT"], "w") as out:
        json_line = '{"token": "%s", "path": "%s"}' % (token, other)
        out.write(json_line)
    assert api.get(other, auth=auth).status_code == 200
"""


def test_a_failed_tests_entry_has_its_trace_id_and_the_services_lines_secrets_masked(
    run_tests: Any, pytester: pytest.Pytester
) -> None:
    receiver = Receiver()
    facts = pytester.path / "facts.json"
    out = pytester.path / "out"
    try:
        run = run_tests(
            FAILING,
            "--junitxml", str(out / "junit.xml"),
            "--html", str(out / "report.html"),
            "--summary", str(out / "summary.md"),
            "--alert", f"webhook={receiver.url}",
            environ={"OUT": str(facts)},
        )  # fmt: skip
    finally:
        receiver.close()
    assert run.result.ret == 1, run.output
    token, path = json.loads(facts.read_text()).values()
    (failure,) = run.report["failures"]
    trace_id = failure["trace_id"]
    assert HEX32.match(trace_id), failure
    lines = failure["service_logs"]
    assert lines, run.output
    api_group = "/aws/lambda/reference-service-sandbox"
    failing = [
        line
        for line in lines
        if trace_id in line["message"] and f'"path": "{path}"' in line["message"]
    ]
    assert failing and failing[0]["log_group"] == api_group
    assert '"status": 403' in failing[0]["message"]
    assert all(set(line) == {"timestamp", "log_group", "message"} for line in lines)
    # the request that carried the token in its path was logged, the token masked
    assert any('"path": "/users/«redacted»"' in line["message"] for line in lines), lines
    figures = run.report["service_logs"]
    assert figures["lookups"] == 1 and figures["calls"] >= 2 and figures["error"] == ""
    assert api_group in figures["log_groups"]
    # every artifact has the trace and the lines, and none has the secret
    artifacts = {
        "terminal": run.output,
        "json": json.dumps(run.report),
        "junit": (out / "junit.xml").read_text(),
        "html": (out / "report.html").read_text(),
        "markdown": (out / "summary.md").read_text(),
        "webhook": b"".join(receiver.raw).decode(),
    }
    for name, text in artifacts.items():
        assert trace_id in text, name
        assert token not in text, name
    assert f"harness: service logs (trace {trace_id})" in run.output
    assert "harness-service-logs" in artifacts["html"]
    assert path in artifacts["markdown"].split(trace_id, 1)[1]
    assert api_group in artifacts["webhook"]
    assert f'name="trace_id" value="{trace_id}"' in artifacts["junit"]
    # the target line names the bus; every report names the service's version
    assert "events on sns (topic arn:aws:sns:" in run.output
    assert run.report["target"]["events_bus"] == "sns"
    assert run.report["service_version"] == run.report["identity"]["version"] != ""


def test_a_passing_run_looks_up_no_logs(run_tests: Any) -> None:
    run = run_tests(
        "def test_ok(api, user):\n"
        "    assert api.get(f'/users/{user.uid}', auth=user.auth).status_code == 200\n"
    )
    assert run.result.ret == 0, run.output
    assert run.report["service_logs"]["log_groups"]  # it could have: the groups are known
    assert run.report["service_logs"]["calls"] == 0
    assert run.report["service_logs"]["lookups"] == 0
    assert run.report["failures"] == []


TWO_FAILURES = """
def test_one(api):
    assert api.get("/health").status_code == 500

def test_two(api):
    assert api.get("/users/1").status_code == 200
"""


def test_logs_that_cannot_be_read_are_said_once_and_fail_nothing(run_tests: Any) -> None:
    run = run_tests(TWO_FAILURES, environ={"HARNESS_LOG_GROUPS": "/aws/lambda/no-such-function"})
    assert run.result.ret == 1, run.output  # the tests' failures, nothing more
    run.result.assert_outcomes(failed=2)
    figures = run.report["service_logs"]
    assert "ResourceNotFoundException" in figures["error"]
    assert figures["calls"] == 1  # once unreadable, never asked again
    assert [f["service_logs"] for f in run.report["failures"]] == [[], []]
    assert all(HEX32.match(f["trace_id"]) for f in run.report["failures"])
    assert run.output.count("service logs could not be read") == 1, run.output


READONLY = """
import pytest


@pytest.mark.readonly
def test_reads_a_stranger(api):
    assert api.get("/users/1").status_code == 200
"""


def test_a_protected_profile_reads_the_logs_too(
    run_tests: Any, pytester: pytest.Pytester, sandbox_environ: dict[str, str]
) -> None:
    profiles = pytester.path / "guarded.toml"
    profiles.write_text(
        "[guarded]\n"
        f'base_url = "{sandbox_environ["HARNESS_BASE_URL"]}"\n'
        'environment = "sandbox"\n'
        f'aws_endpoint_url = "{sandbox_environ["HARNESS_AWS_ENDPOINT_URL"]}"\n'
        'aws_region = "us-east-1"\n'
        f'log_groups = ["{sandbox_environ["HARNESS_LOG_GROUPS"].split(",")[0]}"]\n'
        'log_wait = "2s"\n'
    )
    run = run_tests(
        READONLY,
        "--env", "guarded",
        environ={"HARNESS_CONFIG": str(profiles), "HARNESS_LEASE_TABLE": ""},
    )  # fmt: skip
    assert run.result.ret == 1, run.output
    assert run.report["target"]["protected"] is True
    (failure,) = run.report["failures"]
    assert failure["service_logs"], run.output
    assert failure["trace_id"] in failure["service_logs"][0]["message"]
    assert run.report["service_logs"]["error"] == ""


EVENTS = """
def test_publishes_and_sees(events, namespace):
    email = namespace.email("timeline")
    events.publish("user.created", {"uid": 424242, "email": email, "name": "T"})
    events.expect_event("user.created", where={"email": email})
"""


def test_a_browser_finds_the_events_timeline_rows_in_the_html_report(
    run_tests: Any, pytester: pytest.Pytester
) -> None:
    html = pytester.path / "out" / "report.html"
    run = run_tests(EVENTS, "--html", str(html))
    assert run.result.ret == 0, run.output
    with chromium(pytester.path) as browser:
        browser.get(html.as_uri())
        browser.find_element("css selector", "#show_all_details").click()
        rows = browser.find_elements("css selector", "table.harness-timeline tr.harness-event")
        cells = [[td.text for td in row.find_elements("css selector", "td")] for row in rows]
        kinds = [row.get_attribute("class") for row in rows]
        shown = [row.is_displayed() for row in rows]
        summary = browser.find_element("css selector", "table.harness-run").text
        page = browser.find_element("css selector", "body").text
    assert len(rows) >= 2 and all(shown), (cells, shown)
    assert "harness-event published" in kinds and "harness-event seen" in kinds
    published = cells[kinds.index("harness-event published")]
    seen = cells[kinds.index("harness-event seen")]
    assert published[2] == seen[2] == "user.created"
    assert published[5] == seen[5] and published[5].startswith("event ")  # one `where`
    assert seen[6].endswith(" ms")  # latency
    assert "sns (topic arn:aws:sns:" in summary and "user.created seen p50" in summary
    # the text twin is left out of the HTML log (the terminal and JUnit keep it)
    assert (
        "Captured harness events" not in page and "Captured harness events" not in html.read_text()
    )
