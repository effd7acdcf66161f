"""Every bad input a user can give the `harness` command line, fed to the real CLI (a
subprocess, cwd a folder with its own environments.toml): each ends with the documented exit
status (harness/run/outcome.py) and ONE line on stderr that names the fix — never a
traceback, never pytest's internals, never escaped HTML.

The targets are real: a port nothing listens on, and a loopback HTTP server that answers
/health as a web page, as JSON without an environment, as the wrong environment, or rightly
(in front of an AWS endpoint that is down)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.run import outcome

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "AWS_"))}
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}
RUN_ID = "itest-20200101t000000-abcd"


class Health(BaseHTTPRequestHandler):
    """GET /<name>/health answers as the profile of that name is meant to fail."""

    def do_GET(self) -> None:
        name = self.path.strip("/").split("/")[0]
        if name == "html":
            body, kind = b"<html><head><title>Welcome to nginx!</title></head></html>", "text/html"
        elif name == "malformed":
            body, kind = json.dumps({"status": "ok"}).encode(), "application/json"
        else:  # wrongenv says production; noaws says noaws (its own name: identity holds)
            environment = "production" if name == "wrongenv" else name
            body, kind = json.dumps({"environment": environment}).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    folder = tmp_path_factory.mktemp("project")
    (folder / "environments.toml").write_text(
        f"""
[staging]
base_url = "http://127.0.0.1:9"
environment = "staging"
protected = false

[html]
base_url = "{url}/html"
protected = false

[malformed]
base_url = "{url}/malformed"
protected = false

[wrongenv]
base_url = "{url}/wrongenv"
protected = false

[noaws]
base_url = "{url}/noaws"
aws_endpoint_url = "http://127.0.0.1:9"
aws_region = "us-east-1"
protected = false

[noaws.kinds.thing]
table = "things"
key = ["Id"]
marker = "Id"
""",
        encoding="utf-8",
    )
    (folder / "bad.toml").write_text("[staging\nbase_url = 1\n", encoding="utf-8")
    (folder / "afile").write_text("not a folder\n", encoding="utf-8")
    try:
        yield folder
    finally:
        server.shutdown()


# (command line, extra environment, exit status, what the one line must say)
CASES: list[tuple[list[str], dict[str, str], int, str]] = [
    # configuration and usage: 8
    (["run", "--env", "nope"], {}, outcome.CONFIG, "Add a [nope] table"),
    (["sweep", "--env", "nope"], {}, outcome.CONFIG, "Add a [nope] table"),
    (["recover", "--env", "nope"], {}, outcome.CONFIG, "Add a [nope] table"),
    (["residue", RUN_ID, "--env", "nope"], {}, outcome.CONFIG, "Add a [nope] table"),
    (["run"], {"HARNESS_ENV": "nope"}, outcome.CONFIG, "Add a [nope] table"),
    (["run"], {"HARNESS_CONFIG": "bad.toml"}, outcome.CONFIG, "fix the syntax there"),
    (["sweep"], {"HARNESS_CONFIG": "bad.toml"}, outcome.CONFIG, "fix the syntax there"),
    (["sweep", "--older-than", "bogus"], {}, outcome.CONFIG, "use e.g. 90s, 30m, 2h, 7d"),
    (["sweep", "--max", "-5"], {}, outcome.CONFIG, "give 1 or more"),
    (["sweep", "--max", "0"], {}, outcome.CONFIG, "give 1 or more"),
    (["run", "-n", "0"], {}, outcome.CONFIG, "give 1 or more, or auto"),
    (["run", "-n", "-1"], {}, outcome.CONFIG, "give 1 or more, or auto"),
    (["run", "-n", "many"], {}, outcome.CONFIG, "give 1 or more, or auto"),
    (["run", "--seed", "abc"], {}, outcome.CONFIG, "is not a seed"),
    (["run", "--seed", "-3"], {}, outcome.CONFIG, "out of range"),
    (["run", "--", "--harness-seed", "abc"], {}, outcome.CONFIG, "is not a seed"),
    (["run", "--seed", "1", "--", "--harness-seed", "2"], {}, outcome.CONFIG, "with --seed"),
    (["run", "--env", "staging"], {"HARNESS_SEED": "abc"}, outcome.CONFIG, "--seed N"),
    (["run", "--residue-settle", "-1"], {}, outcome.CONFIG, "give 0 or more"),
    (["run", "--events-drain", "soon"], {}, outcome.CONFIG, "seconds"),
    (["residue", RUN_ID, "--settle", "-2"], {}, outcome.CONFIG, "give 0 or more"),
    (["residue", "not-a-run", "--env", "staging"], {}, outcome.CONFIG, "expected like"),
    (["sweep", "--env", "staging", "--bogus"], {}, outcome.CONFIG, "unrecognized arguments"),
    (["bogus"], {}, outcome.CONFIG, "invalid choice"),
    ([], {}, outcome.CONFIG, "name a command"),
    (["init", "afile"], {}, outcome.CONFIG, "name a directory you can write"),
    (
        ["run", "--env", "staging"],
        {"HARNESS_BASE_URL": "http://127.0.0.1:1", "HARNESS_ENVIRONMENT": "sandbox"},
        outcome.CONFIG,
        "--allow-env-override",
    ),
    (
        ["sweep", "--env", "staging"],
        {"HARNESS_BASE_URL": "http://127.0.0.1:1"},
        outcome.CONFIG,
        "--allow-env-override",
    ),
    # the target: unreachable, not the service, or not the profile's environment: 7
    (["run", "--env", "staging"], {}, outcome.UNREACHABLE, "Is the environment up?"),
    (["run", "--env", "html"], {}, outcome.UNREACHABLE, "an HTML page ('Welcome to nginx!')"),
    (["run", "--env", "malformed"], {}, outcome.UNREACHABLE, "API root"),
    (["run", "--env", "wrongenv"], {}, outcome.UNREACHABLE, "expects 'wrongenv'"),
    (["run", "--env", "noaws"], {}, outcome.UNREACHABLE, "HARNESS_AWS_ENDPOINT_URL"),
    (["sweep", "--env", "noaws"], {}, outcome.UNREACHABLE, "HARNESS_AWS_ENDPOINT_URL"),
    (["recover", "--env", "noaws"], {}, outcome.UNREACHABLE, "HARNESS_AWS_ENDPOINT_URL"),
    (["residue", RUN_ID, "--env", "noaws"], {}, outcome.UNREACHABLE, "HARNESS_AWS_ENDPOINT_URL"),
]


@pytest.mark.parametrize(
    ("args", "environ", "status", "fix"),
    CASES,
    ids=[" ".join(c[0]) + "".join(f" {k}" for k in c[1]) or "(nothing)" for c in CASES],
)
def test_bad_input_is_one_line_and_a_documented_status(
    project: Path, args: list[str], environ: dict[str, str], status: int, fix: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=project,
        env={**CLEAN_ENV, **AWS_ENV, "HARNESS_STATE_DIR": str(project / ".harness"), **environ},
        capture_output=True,
        text=True,
        timeout=180,
    )
    everything = done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == status, everything
    assert len(lines) == 1, everything
    assert lines[0].startswith("harness"), everything
    assert fix in lines[0], everything
    assert "Traceback" not in everything and "_pytest" not in everything, everything
    assert "interrupted" not in everything, everything
    assert "&lt;" not in everything and "<html" not in everything, everything


def test_doctor_says_config_and_unreachable_by_status(project: Path) -> None:
    """doctor prints its table on stdout; its status follows the same table, as `run` ends
    for the same target (noaws: the service answers, its AWS endpoint does not: 7)."""
    cases = (("nope", outcome.CONFIG), ("staging", outcome.UNREACHABLE))
    for env_name, status in (*cases, ("noaws", outcome.UNREACHABLE)):
        done = subprocess.run(
            [sys.executable, "-m", "harness", "doctor", "--env", env_name],
            cwd=project,
            env={**CLEAN_ENV, **AWS_ENV},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == status, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr
