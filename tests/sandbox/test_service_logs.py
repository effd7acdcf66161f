"""The reference service logs as a Lambda would: structured JSON lines in a log group per
function on the emulator's CloudWatch Logs, each carrying the caller's trace id; the processor
logs the event it handled under the trace of the request that published it. A real sandbox
(``python -m sandbox --quiet``: the console is quiet, the log groups are not)."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from typing import Any

import boto3
import requests
from launching import LaunchedSandbox

TRACE = uuid.uuid4().hex


def _lines(sandbox: LaunchedSandbox, trace_id: str, want: int) -> dict[str, list[dict[str, Any]]]:
    logs = boto3.client(
        "logs",
        endpoint_url=sandbox.exports["HARNESS_AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    found: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = {
            group: [
                json.loads(e["message"])
                for e in logs.filter_log_events(logGroupName=group, filterPattern=f'"{trace_id}"')[
                    "events"
                ]
            ]
            for group in sandbox.exports["HARNESS_LOG_GROUPS"].split(",")
        }
        if sum(len(v) for v in found.values()) >= want:
            break
        time.sleep(0.2)
    return found


def test_each_function_logs_json_lines_carrying_the_callers_trace(sandbox: LaunchedSandbox) -> None:
    api, processor = sandbox.exports["HARNESS_LOG_GROUPS"].split(",")
    assert api == "/aws/lambda/reference-service-sandbox"
    assert processor == "/aws/lambda/reference-service-sandbox-process_user_events"
    headers = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "X-Harness-Run": "itest-x"}
    email = f"itest-logs-{uuid.uuid4().hex[:8]}@env-harness.example.test"
    base = sandbox.base_url
    created = requests.post(
        f"{base}/users", json={"email": email, "name": "L", "password": "logs-password"},
        headers=headers, timeout=10,
    )  # fmt: skip
    uid = created.json()["uid"]
    assert requests.get(f"{base}/users/{uid}", headers=headers, timeout=10).status_code == 403
    found = _lines(sandbox, TRACE, 4)
    requests_logged = {(line["method"], line["path"], line["status"]) for line in found[api]}
    assert ("POST", "/users", 201) in requests_logged
    assert ("GET", f"/users/{uid}", 403) in requests_logged
    for line in found[api] + found[processor]:
        assert line["trace_id"] == TRACE and line["service"] == "reference-service"
        assert line["level"] in ("INFO", "WARNING", "ERROR") and line["timestamp"].endswith("Z")
    assert "logs-password" not in json.dumps(found)
    # the event the sign-up published carried the request's trace to the processor
    handled = [line for line in found[processor] if line.get("event_type") == "user.created"]
    assert handled and handled[0]["uid"] == uid
    assert any(line.get("outcome") == "welcomed" for line in found[processor])
    # a request without a trace logs no trace id, and is not found by one
    requests.get(f"{base}/health", timeout=10)
    # the console stayed quiet (--quiet): no per-request line there
    assert "POST /users -> 201" not in sandbox.stderr()


def test_an_exception_is_logged_with_its_type() -> None:
    sys.path.insert(0, "sandbox/service")
    from chalicelib import logs

    record: logging.LogRecord | None = None
    try:
        raise KeyError("boom")
    except KeyError:
        record = logging.LogRecord(
            "service", logging.ERROR, "x.py", 1, "failed", (), sys.exc_info()
        )
    with logs.traced(f"00-{TRACE}-00f067aa0ba902b7-01"):
        line = json.loads(logs.JsonFormatter().format(record))
        assert logs.outgoing_traceparent().startswith(f"00-{TRACE}-")
    assert line["exception_name"] == "KeyError" and "boom" in line["exception"]
    assert line["trace_id"] == TRACE and line["message"] == "failed"
    assert logs.outgoing_traceparent() == ""  # outside the traced work: nothing carried
    assert logs.event_traceparent({"traceparent": {"stringValue": "00-a-b-01"}}) == "00-a-b-01"
    assert (
        logs.event_traceparent([{"type": [1]}, {"traceparent": list(b"00-c-d-01")}]) == "00-c-d-01"
    )
