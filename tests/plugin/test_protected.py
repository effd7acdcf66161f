"""A protected target is enforced, not trusted: a real sandbox run with HARNESS_PROTECTED=true
where every test is marked ``readonly`` (so each one runs) and each tries one door — an HTTP
write, the user and token factories, a direct table write and a queue send through the
harness's own AWS clients, an event publish. Each is refused with one line naming the rule
and the profile, reads still work, a route named in ``allow_writes`` still goes out, and an
independent digest of every table, queue and topic is the same before and after."""

from __future__ import annotations

import re
from typing import Any

import pytest

from harness.clients.aws import Aws
from tests.digest import digest, snapshot
from tests.plugin.test_lifecycle import harness_run  # noqa: F401  (the fixture)

pytestmark = pytest.mark.e2e

DOORS = """
import pytest

pytestmark = pytest.mark.readonly  # every test runs: only enforcement keeps them out


def test_http_write(api, namespace):
    api.post(
        "/users",
        json={"email": namespace.email("door"), "name": "Door", "password": "door-pass-1"},
    )


def test_http_delete(api):
    api.delete("/users/1")


def test_user_factory(user):
    pass


def test_token_factory(token_factory):
    token_factory()


def test_table_write(harness_session, env, namespace):
    table = harness_session.aws.table(env.setting("users_table"))
    table.put_item(Item={"Uid": 1, "Email": namespace.email("direct")})


def test_queue_send(harness_session, env):
    harness_session.aws.sqs.send_message(QueueUrl=env.processor_queue_url, MessageBody="{}")


def test_event_publish(events, namespace):
    events.publish("user.created", {"uid": 1, "email": namespace.email("ev"), "name": "E"})


def test_reads_still_work(api, harness_session, env):
    assert api.get("/health").status_code == 200
    assert api.get("/users/1").status_code in (401, 403)
    tables = harness_session.aws.dynamodb_client.list_tables()["TableNames"]
    assert env.setting("users_table") in tables


def test_an_allowed_route_goes_out(api):
    response = api.post("/login", json={"email": "nobody@example.com", "password": "x" * 10})
    assert response.status_code == 401
"""

#: test name -> what its one line must name
REFUSED = {
    "test_http_write": "POST /users refused",
    "test_http_delete": "DELETE /users/1 refused",
    "test_user_factory": "creating a user refused",
    "test_token_factory": "creating a token refused",
    "test_table_write": "AWS dynamodb PutItem refused",
    "test_queue_send": "AWS sqs SendMessage refused",
    "test_event_publish": "the events fixtures refused",
}


def test_every_door_is_shut_on_a_protected_target(harness_run: Any, aws: Aws) -> None:  # noqa: F811
    before = digest(snapshot(aws))
    run = harness_run(
        DOORS,
        "-rfE",
        environ={"HARNESS_PROTECTED": "true", "HARNESS_ALLOW_WRITES": "POST /login"},
    )
    after = digest(snapshot(aws))
    assert before == after, "the protected target changed"

    outcomes = run.result.parseoutcomes()
    assert outcomes.get("passed") == 2, run.output
    assert outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0)) == len(
        REFUSED
    ), run.output
    assert run.report["skipped_by_protection"] == 0  # all readonly: enforcement did it
    assert run.report["resources"]["created"] == 0
    messages = {f["nodeid"].split("::")[-1]: f["message"] for f in run.report["failures"]}
    assert set(messages) == set(REFUSED), messages
    for test, what in REFUSED.items():
        line = messages[test]
        assert line.startswith(f"protected target [sandbox]: {what} — "), line
        assert len(line) < 240, line  # whole in the report, not cut
        # the one line, as the terminal shows it in the failure's section and the summary
        assert f"\n{line}\n" in run.output, (test, run.output)
        assert re.search(rf"(FAILED|ERROR) test_it.py::{test} - protected target", run.output)
    # no traceback for a refusal: the section is the line (and the transcript)
    assert "Traceback" not in run.output and "raise refusal" not in run.output
    assert "residue check: clean" in run.output
