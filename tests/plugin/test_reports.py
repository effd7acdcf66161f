"""Reports and alerts of real runs against a real sandbox: JSON, JUnit, HTML, Markdown and
the webhook all written, secrets in none of them; latency exact across xdist workers; alerts
that never change the exit status; CloudWatch metrics on the emulator."""

from __future__ import annotations

import json
import random
import re
import string
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.clients.aws import Aws
from harness.namespace import RunId
from harness.run import outcome

pytestmark = pytest.mark.e2e

CONFTEST = 'pytest_plugins = ["fixtures.users"]\n'


def without_plotly(html: str) -> str:
    """The page without the plotly.js bundle the history charts embed (its own script)."""
    return re.sub(r"<script[^>]*>\s*/\*\*\s*\* plotly\.js v.*?</script>", "", html, flags=re.S)


class Receiver:
    """A loopback webhook receiver: http.server in a thread, keeping every JSON body."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.raw.append(body)
                receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/hook-secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


class Run:
    def __init__(self, result: pytest.RunResult, run_id: str, out: Path) -> None:
        self.result = result
        self.run_id = run_id
        self.out = out
        report = out / "report.json"
        self.report: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}

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
        monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
        if environ and "GITHUB_STEP_SUMMARY" in environ:
            monkeypatch.setenv("GITHUB_STEP_SUMMARY", environ["GITHUB_STEP_SUMMARY"])
        run_id = str(RunId.generate())
        monkeypatch.setenv("HARNESS_RUN_ID", run_id)
        monkeypatch.setenv("HARNESS_STATE_DIR", str(pytester.path / ".harness"))
        pytester.makeconftest(CONFTEST)
        pytester.makepyfile(test_it=test_source)
        out = pytester.path / "out"
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--harness-report", str(out / "report.json"), *args
        )
        return Run(result, run_id, out)

    return run


SECRETS_RUN = """
import logging
import os


def _keep(*values):
    with open(os.environ["SECRETS_OUT"], "a") as out:
        out.write("\\n".join(values) + "\\n")


def test_login_token_in_an_assertion(api, user, token_factory):
    injected = token_factory(user, ttl=120)
    response = api.post("/login", json={"email": user.email, "password": user.password})
    _keep(user.password, user.token, injected.token, response.json()["token"])
    print("debug:", response.json()["token"], user.password, injected.token)
    logging.getLogger("suite").warning("token %s", response.json()["token"])
    assert response.status_code == 999, response.text


def test_fails_with_a_password(user_factory):
    user = user_factory()
    _keep(user.password, user.token)
    raise RuntimeError(f"could not use {user.email} with {user.password}")


def test_passes(api, user):
    _keep(user.password, user.token)
    assert api.get(f"/users/{user.uid}", auth=user.auth).status_code == 200
"""


def test_failing_run_alerts_and_writes_every_report_without_secrets(
    harness_run: Any, receiver: Receiver, pytester: pytest.Pytester
) -> None:
    secrets_file = pytester.path / "secrets.txt"
    step_summary = pytester.path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    out = pytester.path / "out"
    run = harness_run(
        SECRETS_RUN,
        "-n", "2",
        "--junitxml", str(out / "junit.xml"),
        "-o", "junit_logging=all",
        "--html", str(out / "report.html"),
        "--summary", str(out / "summary.md"),
        "--alert", f"webhook={receiver.url}",
        environ={"SECRETS_OUT": str(secrets_file), "GITHUB_STEP_SUMMARY": str(step_summary)},
    )  # fmt: skip
    assert run.result.ret == 1, run.output
    run.result.assert_outcomes(passed=1, failed=2)

    # every artifact exists and says what broke
    failures = {f["nodeid"].split("::")[-1]: f for f in run.report["failures"]}
    assert set(failures) == {"test_login_token_in_an_assertion", "test_fails_with_a_password"}
    assert "assert 200 == 999" in failures["test_login_token_in_an_assertion"]["message"]
    assert failures["test_fails_with_a_password"]["message"].startswith("RuntimeError: could")
    # the crash message survives redaction, masked
    assert "with «redacted»" in failures["test_fails_with_a_password"]["message"]
    summary = (out / "summary.md").read_text()
    assert "❌ FAILED" in summary and "test_login_token_in_an_assertion" in summary
    assert step_summary.read_text().startswith("earlier step\n")  # appended, not replaced
    assert summary in step_summary.read_text()
    junit = (out / "junit.xml").read_text()
    assert 'failures="2"' in junit and "debug: «redacted» «redacted»" in junit
    html = (out / "report.html").read_text()
    assert "harness-latency" in html and "<svg" in html
    assert "Residue check: clean" in html
    assert len(receiver.bodies) == 1
    assert "FAILED" in receiver.bodies[0]["text"]
    assert "test_login_token_in_an_assertion" in receiver.bodies[0]["text"]
    assert "hook-secret" not in run.output

    # the HTML report loads nothing: no external script, stylesheet, image or font (the
    # embedded plotly.js names links of features the charts do not use — its logo, map
    # tiles —: tests/e2e/test_history.py asks a browser what such a page really loaded)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", without_plotly(html).replace(
        'href="https://pypi.python.org/pypi/pytest-html"', ""))  # fmt: skip
    assert "url(http" not in html and "@import" not in html

    # no secret the run produced appears anywhere
    secrets = {s for s in secrets_file.read_text().split() if s}
    assert len(secrets) >= 7, secrets  # 3 passwords, 4 tokens at least (xdist: both workers)
    artifacts = {
        "stdout": run.output,
        "json": json.dumps(run.report),
        "junit": junit,
        "html": html,
        "markdown": summary + step_summary.read_text(),
        "webhook": b"".join(receiver.raw).decode(),
    }
    assert "test_fails_with_a_password" in junit and "«redacted»" in junit  # there, masked
    leaks = {(name, s) for name, text in artifacts.items() for s in secrets if s in text}
    assert leaks == set()


EVERY_ROUTE = """
import logging
import os

from harness.adapter import UidTokenAuth

S = {k[len("PLANTED_"):].lower(): v for k, v in os.environ.items() if k.startswith("PLANTED_")}


def test_secrets_by_every_route(api, user):
    login = api.post("/login", json={"email": user.email, "password": user.password})
    with open(os.environ["SECRETS_OUT"], "a") as out:
        out.write(login.json()["token"] + "\\n")  # the response body's secret
    auth = UidTokenAuth(user.uid, login.json()["token"])  # the fixture's token is replaced
    body = {
        "name": "Ada",
        "password": S["body"],
        "profile": {"settings": {"client_secret": S["nested"]}},
    }
    api.patch(f"/users/{user.uid}", json=body, auth=auth, headers={"X-Api-Key": S["header"]})
    api.get(f"/users/{user.uid}", params={"access_token": S["query"]}, auth=auth)
    api.get(f"/health?session_id={S['url']}")
    api.post("/login", data={"email": user.email, "password": S["form"]})
    api.post("/login", data=f"email=x%40y.test&password={S['form_text']}")
    print("sent", body, "with", {"X-Api-Key": S["header"]})
    logging.getLogger("suite").warning("sent %s; url ?session_id=%s", body, S["url"])
    assert login.status_code == 999, login.text
"""


def test_secrets_planted_by_every_route_reach_no_artifact(
    harness_run: Any, receiver: Receiver, pytester: pytest.Pytester
) -> None:
    """Short secrets (7 characters: too short to be learned as values) sent by every route
    of a failing test; a longer one (the login token) in a response body. Not one of them
    in the terminal (live logs included), JUnit, HTML, Markdown, the JSON report, the log
    file or the webhook."""
    rng = random.SystemRandom()
    planted = {
        name: "".join(rng.choices(string.ascii_letters + string.digits, k=7))
        for name in ("body", "nested", "header", "query", "url", "form", "form_text")
    }
    secrets_file = pytester.path / "secrets.txt"
    out = pytester.path / "out"
    run = harness_run(
        EVERY_ROUTE,
        "--junitxml", str(out / "junit.xml"),
        "-o", "junit_logging=all",
        "--html", str(out / "report.html"),
        "--summary", str(out / "summary.md"),
        "--log-file", str(out / "run.log"),
        "-o", "log_cli=true",
        "--alert", f"webhook={receiver.url}",
        environ={
            "SECRETS_OUT": str(secrets_file),
            **{f"PLANTED_{name.upper()}": value for name, value in planted.items()},
        },
    )  # fmt: skip
    assert run.result.ret == 1, run.output
    run.result.assert_outcomes(failed=1)
    token = secrets_file.read_text().strip()
    assert len(token) >= 16
    artifacts = {
        "terminal": run.output,
        "junit": (out / "junit.xml").read_text(),
        "html": (out / "report.html").read_text(),
        "markdown": (out / "summary.md").read_text(),
        "json": json.dumps(run.report),
        "log file": (out / "run.log").read_text(),
        "webhook": b"".join(receiver.raw).decode(),
    }
    # every route was taken and shows up, masked
    transcript = run.output.split("harness: HTTP transcript (redacted)")[1]
    transcript = transcript.split("harness: service logs")[0]  # the service's own lines follow
    for shown in (
        '"password": "«redacted»"',
        '"settings": {"client_secret": "«redacted»"}',
        '"X-Api-Key": "«redacted»"',
        "access_token=«redacted»",
        "session_id=«redacted»",
        "email=x%40y.test&password=«redacted»",
        '"token": "«redacted»"',
    ):
        assert shown in transcript, (shown, transcript)
    assert transcript.count("POST /login -> 400") == 2  # both forms were sent (and refused)
    assert "PATCH /users/" in transcript and "-> 200" in transcript.split("PATCH /users/")[1]
    assert "sent {" in artifacts["log file"] and "sent {" in artifacts["junit"]
    leaks = {
        (where, name)
        for where, text in artifacts.items()
        for name, secret in {**planted, "response token": token}.items()
        if secret in text
    }
    assert leaks == set()


LATENCY_RUN = """
import pytest

@pytest.mark.readonly
@pytest.mark.parametrize("n", range(6))
def test_reads(api, n):
    for uid in (n, n + 100, n + 10_000):
        assert api.get(f"/users/{uid}").status_code == 403
    assert api.get("/health").status_code == 200
"""


def test_latency_is_aggregated_exactly_across_workers(harness_run: Any) -> None:
    run = harness_run(LATENCY_RUN, "-n", "2")
    run.result.assert_outcomes(passed=6)
    rows = {f"{r['method']} {r['route']}": r for r in run.report["latency"]}
    assert rows["GET /users/{id}"]["count"] == 18
    assert rows["GET /health"]["count"] == 6
    row = rows["GET /users/{id}"]
    assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["max_ms"]
    assert "slowest endpoints" in run.output and "/users/{id}" in run.output
    assert run.report["identity"]["environment"] == "sandbox"


def test_no_webhook_on_success_unless_always(harness_run: Any, receiver: Receiver) -> None:
    source = "def test_ok(api):\n    assert api.get('/health').status_code == 200\n"
    quiet = harness_run(source, "--alert", f"webhook={receiver.url}")
    assert quiet.result.ret == 0 and receiver.bodies == []
    loud = harness_run(source, "--alert", f"webhook={receiver.url}", "--alert-on", "always")
    assert loud.result.ret == 0
    assert len(receiver.bodies) == 1 and "passed" in receiver.bodies[0]["text"]


def test_an_undeliverable_alert_is_a_warning_not_a_failure(harness_run: Any) -> None:
    broken = Receiver(status=500)
    try:
        source = "def test_ok(api):\n    assert api.get('/health').status_code == 200\n"
        run = harness_run(
            source,
            "--alert-on", "always",
            "--alert", f"webhook={broken.url}",
            "--alert", "webhook=http://127.0.0.1:9/closed",
        )  # fmt: skip
    finally:
        broken.close()
    assert run.result.ret == 0, run.output
    port = broken.server.server_address[1]
    assert f"alert (webhook to 127.0.0.1:{port}) not delivered: HTTP 500" in run.output
    assert "alert (webhook to 127.0.0.1:9) not delivered: ConnectionError" in run.output
    assert run.output.count(f"alert (webhook to 127.0.0.1:{port}) not delivered") == 1, run.output
    assert "Traceback" not in run.output


def test_a_run_that_cannot_start_still_alerts(harness_run: Any, receiver: Receiver) -> None:
    run = harness_run(
        "def test_x(api): pass",
        "--alert", f"webhook={receiver.url}",
        environ={"HARNESS_BASE_URL": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert run.result.ret == outcome.UNREACHABLE
    assert len(receiver.bodies) == 1
    assert "cannot reach http://127.0.0.1:9/health" in receiver.bodies[0]["text"]


def test_bad_alert_option_is_a_usage_error_naming_the_fix(harness_run: Any) -> None:
    run = harness_run("def test_x(): pass", "--alert", "slack")
    assert run.result.ret == outcome.CONFIG  # pytest's usage error (4) is mapped
    assert "use --alert webhook=URL or --alert cloudwatch" in run.output
    assert len(run.result.stderr.lines) == 1, run.output


def test_cloudwatch_metrics_reach_the_emulator(harness_run: Any, aws: Aws) -> None:
    source = """
import pytest

def test_ok(api):
    assert api.get('/health').status_code == 200

def test_fails(api):
    assert api.get('/health').status_code == 500

@pytest.mark.skip(reason="counted")
def test_skipped():
    pass
"""
    started = datetime.now(UTC) - timedelta(seconds=5)
    run = harness_run(source, "--alert", "cloudwatch")
    assert run.result.ret == 1
    assert "alert: sent (CloudWatch metrics)" in run.output
    sums = {}
    for name in ("Passed", "Failed", "Skipped", "Leaked", "DurationSeconds"):
        stats = aws.session.client(
            "cloudwatch", endpoint_url=aws.endpoint_url
        ).get_metric_statistics(
            Namespace="EnvHarness",
            MetricName=name,
            Dimensions=[{"Name": "environment", "Value": "sandbox"}],
            StartTime=started,
            EndTime=datetime.now(UTC) + timedelta(seconds=60),
            Period=60,
            Statistics=["Sum", "SampleCount"],
        )
        sums[name] = sum(p["Sum"] for p in stats["Datapoints"])
    assert (sums["Passed"], sums["Failed"], sums["Skipped"], sums["Leaked"]) == (1, 1, 1, 0)
    assert sums["DurationSeconds"] > 0
    time.sleep(0)  # nothing timed is asserted
