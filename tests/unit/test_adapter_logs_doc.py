"""docs/adapters.md §11: the few lines a team adds to its service so its log lines join the
harness's trace — executed here: fed a request the harness's own client would send, the line
they log carries the test's trace id, so the harness's filter pattern finds it. The profile
snippet there loads, with every field it names."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from harness.clients.trace import TestTrace
from harness.config import load_profile

REPO = Path(__file__).resolve().parents[2]


def block(language: str, first_line: str) -> str:
    text = (REPO / "docs" / "adapters.md").read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, re.S)
    (found,) = [b for b in blocks if b.startswith(first_line)]
    return found


def test_the_services_few_lines_log_the_tests_trace_id(caplog: pytest.LogCaptureFixture) -> None:
    code = block("python", "# your service: log lines that join the harness's trace")
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/adapters.md", "exec"), namespace)
    trace = TestTrace()
    trace_id = trace.begin()
    event = {"path": "/notes/7", "headers": trace.headers()}  # what the harness sends
    with caplog.at_level(logging.INFO, logger="my-service"):
        namespace["log_request"](event, 500)
    line = json.loads(caplog.records[-1].getMessage())
    assert line == {"path": "/notes/7", "status": 500, "trace_id": trace_id}
    assert trace_id in caplog.records[-1].getMessage()  # what the quoted filter term matches
    assert namespace["trace_id"]({"traceparent": "garbage"}) == ""


def test_the_profile_snippet_loads(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(block("toml", "# environments.toml, the service's logs"))
    profile = load_profile("staging", path, environ={}, declared={})
    assert profile.log_groups == (
        "/aws/lambda/notes-api-staging",
        "/aws/lambda/notes-worker-staging",
    )
    assert profile.log_wait == 10.0 and profile.version_path == "/version"
