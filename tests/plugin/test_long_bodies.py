"""A 10 MB response body in a failing assertion's message, through a real run against the
sandbox (the body from a loopback server the test starts, fetched with the ``api`` client):
every artifact — terminal, JUnit, HTML, the JSON report — shows at most the cap of it, with
the cut marker, and the secret placed across every cut point is masked in all of them.
(It took 29 s and landed whole in each; the time is measured by hand, not asserted.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from harness.namespace import RunId
from harness.safety.redact import SHOWN

pytestmark = pytest.mark.e2e

HUGE_RUN = """
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(body):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_huge_response_in_the_assertion(api, user):
    with open(os.environ["SECRETS_OUT"], "w") as out:
        out.write(user.token)
    # the user's token over and over where every artifact's cut falls (~1,950-2,400)
    body = ("Z" * 1900 + (user.token + "-") * 12 + "Z" * 10_000_000).encode()
    server = serve(body)
    try:
        response = api.get(f"http://127.0.0.1:{server.server_address[1]}/big")
    finally:
        server.shutdown()
    assert response.status_code == 201, response.text
"""


def _longest_run(text: str, char: str = "Z") -> int:
    return max((len(m) for m in re.findall(f"{char}+", text)), default=0)


def test_a_10_mb_body_in_an_assertion_is_capped_and_masked_in_every_artifact(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, sandbox_environ: dict[str, str]
) -> None:
    for key, value in sandbox_environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HARNESS_RUN_ID", str(RunId.generate()))
    monkeypatch.setenv("HARNESS_STATE_DIR", str(pytester.path / ".harness"))
    secrets_file = pytester.path / "secrets.txt"
    monkeypatch.setenv("SECRETS_OUT", str(secrets_file))
    pytester.makeconftest('pytest_plugins = ["fixtures.users"]\n')
    pytester.makepyfile(test_huge=HUGE_RUN)
    out = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider",
        "--harness-report", str(out / "report.json"),
        "--junitxml", str(out / "junit.xml"),
        "--html", str(out / "report.html"),
    )  # fmt: skip
    terminal = result.stdout.str() + result.stderr.str()
    assert result.ret == 1, terminal[-3000:]
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    artifacts = {
        "terminal": terminal,
        "junit": (out / "junit.xml").read_text(),
        "html": (out / "report.html").read_text(),
        "json": json.dumps(report, ensure_ascii=False),
    }
    token = secrets_file.read_text()
    assert len(token) >= 20
    for name, text in artifacts.items():
        assert _longest_run(text) <= SHOWN, (name, _longest_run(text))
        assert len(text) < 1_000_000, (name, len(text))
        assert token not in text, name
    # the cut says so, in each place the body is shown
    assert re.search(r"E +AssertionError: Z+.*… \[\d{8} characters cut\]", terminal)
    assert re.search(r"response: Z+.*… \[\d{8} characters cut\]", terminal)  # the transcript
    assert "characters cut]" in artifacts["junit"] and "characters cut]" in artifacts["html"]
    [failure] = report["failures"]
    assert failure["message"].startswith("AssertionError: ZZZ")
    assert len(failure["message"]) <= 240 and re.search(
        r"… \[\d{8} characters cut\]$", failure["message"]
    )
