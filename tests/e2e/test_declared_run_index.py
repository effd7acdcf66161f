"""A declared kind with a sparse run index: the residue check finds everything a run left in
the table — recorded or not — with a Query of that index, never a Scan, and the sweeper's
search (no run named) still scans. Against the real emulator, calls counted through
botocore's event hooks."""

from __future__ import annotations

import secrets
from collections import Counter
from pathlib import Path

import pytest

from harness.cleanup.residue import check
from harness.clients.aws import Aws
from harness.config import ConfigError, load_profile
from harness.kinds import registry
from harness.kinds.declared import DeclaredKind
from harness.namespace import Namespace, RunId
from harness.safety.guards import Owner
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

SPEC = {
    "key": ["NoteId"],
    "marker": "Owner",
    "run_index": "by-run",
    "run_attribute": "HarnessRun",
}


@pytest.fixture(scope="module")
def notes(sandbox_environ: dict[str, str]) -> tuple[DeclaredKind, Counter[str], Namespace]:
    profile = registry.load_profile("sandbox", REPO / "environments.toml", environ=sandbox_environ)
    aws = Aws(profile)
    table = f"notes-{secrets.token_hex(3)}"
    aws.dynamodb_client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "NoteId", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "NoteId", "AttributeType": "S"},
            {"AttributeName": "HarnessRun", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-run",
                "KeySchema": [{"AttributeName": "HarnessRun", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ours = Namespace(RunId.generate(), "gw0")
    other = Namespace(RunId.generate(), "gw1")
    with aws.table(table).batch_writer() as batch:
        for i in range(5):
            owner = ours.name(f"n{i}")
            batch.put_item(Item={"NoteId": owner, "Owner": owner, "HarnessRun": str(ours.run)})
        for i in range(3):
            owner = other.name(f"n{i}")
            batch.put_item(Item={"NoteId": owner, "Owner": owner, "HarnessRun": str(other.run)})
        for i in range(40):  # a colleague's notes: no run attribute, not in the index
            batch.put_item(Item={"NoteId": f"real-{i}", "Owner": f"colleague-{i}"})
    kind = DeclaredKind.from_spec("note", {**SPEC, "table": table}, profile, aws)
    calls: Counter[str] = Counter()
    # On the client the kind's table uses (a client copies the session's hooks when built).
    aws.dynamodb_client.meta.events.register(
        "before-call", lambda model=None, **_: calls.update([model.name]) if model else None
    )
    return kind, calls, ours


def test_a_runs_items_come_from_the_index(
    notes: tuple[DeclaredKind, Counter[str], Namespace],
) -> None:
    kind, calls, ours = notes
    calls.clear()
    found = kind.find(f"{ours.run}-")
    assert sorted(f.marker for f in found) == sorted(ours.name(f"n{i}") for i in range(5))
    assert calls["Scan"] == 0 and calls["Query"] >= 1, calls


def test_the_residue_check_finds_unrecorded_items_without_a_scan(
    notes: tuple[DeclaredKind, Counter[str], Namespace],
) -> None:
    kind, calls, ours = notes
    calls.clear()
    result = check(
        {"note": kind},
        f"{ours.run}-",
        Owner(run=ours.run),
        settle=0,
        remove=False,
        scan_limit=0,  # never scan: the index is the only namespace-wide look
    )
    assert len(result.leaked) == 5
    assert calls["Scan"] == 0, calls


def test_the_sweepers_search_still_scans(
    notes: tuple[DeclaredKind, Counter[str], Namespace],
) -> None:
    kind, calls, _ = notes
    calls.clear()
    assert len(kind.find("itest-")) == 8
    assert calls["Scan"] >= 1, calls


def test_run_index_and_attribute_go_together(tmp_path: Path) -> None:
    path = tmp_path / "environments.toml"
    path.write_text(
        '[dev]\nbase_url = "http://x"\n[dev.kinds.note]\ntable = "t"\nkey = "Id"\n'
        'marker = "Owner"\nrun_index = "by-run"\n'
    )
    with pytest.raises(ConfigError, match=r"run_index .* and run_attribute .* go together"):
        load_profile("dev", path, environ={}, declared={})
