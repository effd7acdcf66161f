"""Declared kinds against their real tables (issue 21, item 2), on the live sandbox's
emulator: ``harness doctor`` fails a wrong ``key`` and a wrong ``index``, naming the table's
real key and index and the TOML line to write (exit 8, as the run would end); a run whose
declared kind has a wrong key refuses to start — one line, exit 8, report ``config`` — having
created nothing: no journal, and every table (the kind's among them) exactly as it was. A
project as a user lays it out: no HARNESS_* variable, the sandbox's names in its file."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.clients.aws import Aws
from harness.run.local_sandbox import LocalSandbox
from tests.digest import digest, snapshot
from tests.e2e.test_config_project import PYTEST_INI, fields_of, harness, shown, user_environ

pytestmark = pytest.mark.e2e

#: A test that writes a note straight into the kind's table, through the ledger.
NOTES = """\
def test_a_note(ledger, namespace, harness_session, env):
    owner = namespace.name()
    table = harness_session.aws.table(env.kinds["note"]["table"])

    def put():
        table.put_item(Item={"Owner": owner, "NoteId": "n1", "Author": owner})
        return {"NoteId": "n1"}

    ledger.create("note", {"Owner": owner}, put)
"""


@pytest.fixture
def notes_table(aws: Aws) -> Iterator[str]:
    """Keyed on Owner (hash) and NoteId (range), with a GSI on Author; removed after."""
    name = f"notes-{secrets.token_hex(3)}"
    aws.dynamodb_client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "Owner", "KeyType": "HASH"},
            {"AttributeName": "NoteId", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "Owner", "AttributeType": "S"},
            {"AttributeName": "NoteId", "AttributeType": "S"},
            {"AttributeName": "Author", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-author",
                "KeySchema": [{"AttributeName": "Author", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        yield name
    finally:
        aws.dynamodb_client.delete_table(TableName=name)


def write_project(root: Path, sandbox: LocalSandbox, kinds: str) -> Path:
    (root / "suites").mkdir(parents=True)
    adapter = ("users_table", "tokens_table", "notifications_table")  # no adapter: declared only
    local: dict[str, object] = {k: v for k, v in fields_of(sandbox).items() if k not in adapter}
    local["protected"] = False
    lines = ["[local]", *(f"{k} = {json.dumps(v)}" for k, v in local.items()), "", kinds]
    (root / "environments.toml").write_text("\n".join(lines))
    (root / "pytest.ini").write_text(PYTEST_INI)
    (root / "suites" / "test_notes.py").write_text(NOTES)
    return root


def lines_of(text: str) -> list[str]:
    """Doctor's rows with their column padding folded to one space."""
    return [" ".join(line.split()) for line in text.splitlines()]


def test_doctor_fails_a_wrong_key_and_a_wrong_index_naming_the_real_ones(
    tmp_path: Path, live_sandbox: LocalSandbox, sandbox_environ: dict[str, str], notes_table: str
) -> None:
    kinds = (
        f'[local.kinds.note]\ntable = "{notes_table}"\nkey = ["NoteId"]\nmarker = "Owner"\n\n'
        f'[local.kinds.memo]\ntable = "{notes_table}"\nkey = ["Owner", "NoteId"]\n'
        f'marker = "Author"\nindex = "by-writer"\n'
    )
    project = write_project(tmp_path / "proj", live_sandbox, kinds)
    done = harness(user_environ(sandbox_environ), project, "doctor")
    assert done.returncode == 8, shown(done)
    out, lines = done.stdout, lines_of(done.stdout)
    key_row = lines.index(
        f'FAIL kind note key kind note: key = ["NoteId"] is not the key of table '
        f"'{notes_table}' (its KeySchema: Owner HASH, NoteId RANGE)"
    )
    assert lines[key_row + 1] == 'fix: write key = ["Owner", "NoteId"] under [local.kinds.note]'
    index_row = lines.index(
        f"FAIL kind memo index kind memo: index 'by-writer' is not an index of table "
        f"'{notes_table}' (its indexes: by-author (Author HASH))"
    )
    assert lines[index_row + 1] == 'fix: write index = "by-author" under [local.kinds.memo]'
    assert f"OK table kind note {notes_table} (ACTIVE)" in lines, out
    assert "FAIL: fix the rows above before a run" in out and "all checks OK" not in out


def test_doctor_is_green_once_the_lines_are_written(
    tmp_path: Path, live_sandbox: LocalSandbox, sandbox_environ: dict[str, str], notes_table: str
) -> None:
    kinds = (
        f'[local.kinds.note]\ntable = "{notes_table}"\nkey = ["Owner", "NoteId"]\n'
        f'marker = "Author"\nindex = "by-author"\n'
    )
    project = write_project(tmp_path / "proj", live_sandbox, kinds)
    done = harness(user_environ(sandbox_environ), project, "doctor")
    assert done.returncode == 0, shown(done)
    assert (
        f"OK kind note key Owner, NoteId; index by-author: fit table {notes_table}"
    ) in lines_of(done.stdout), done.stdout


def test_a_run_with_a_wrong_key_refuses_to_start_having_created_nothing(
    tmp_path: Path,
    live_sandbox: LocalSandbox,
    sandbox_environ: dict[str, str],
    aws: Aws,
    notes_table: str,
) -> None:
    kinds = f'[local.kinds.note]\ntable = "{notes_table}"\nkey = ["NoteId"]\nmarker = "Owner"\n'
    project = write_project(tmp_path / "proj", live_sandbox, kinds)
    report_path = tmp_path / "report.json"
    before = snapshot(aws)
    run = harness(user_environ(sandbox_environ), project, "run", "--report", str(report_path))
    assert run.returncode == 8, shown(run)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines == [
        f"harness: kind note: key = [\"NoteId\"] is not the key of table '{notes_table}' (its "
        f'KeySchema: Owner HASH, NoteId RANGE): write key = ["Owner", "NoteId"] under '
        f"[local.kinds.note]"
    ], shown(run)
    assert "Traceback" not in run.stdout + run.stderr
    report = json.loads(report_path.read_text())
    assert (report["outcome"], report["exit_status"]) == ("config", 8)
    assert not (project / ".harness" / "runs").exists(), "nothing journaled, no lock taken"
    after = snapshot(aws)
    assert after["tables"][notes_table] == [] and digest(after) == digest(before)
