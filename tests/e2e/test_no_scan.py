"""A run's AWS cost follows what it touched, not the size of the environment: counted call by
call through botocore's event hooks in the real processes (``harness run``, ``harness
doctor``) against a sandbox whose tables hold more foreign items than the residue check's
scan limit. A normal smoke run issues no ``Scan``; start-up (preflight, doctor) describes
tables and queues and never reads an item."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.clients.aws import Aws
from harness.kinds import load_kinds
from harness.kinds.registry import load_profile
from harness.safety import preflight
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

#: Imported by every Python process started with this folder on PYTHONPATH: counts each
#: AWS operation of every boto3 session (``before-call`` hook) and appends the counts of
#: the process to $BOTOCOUNT_FILE when it exits.
SITECUSTOMIZE = """
import atexit, collections, json, os

_counts = collections.Counter()


def _count(model=None, **_):
    if model is not None:
        _counts[model.service_model.service_name + ":" + model.name] += 1


def _install():
    import boto3.session

    original = boto3.session.Session.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.events.register("before-call", _count)

    boto3.session.Session.__init__ = init


def _dump():
    with open(os.environ["BOTOCOUNT_FILE"], "a") as out:
        out.write(json.dumps(dict(_counts)) + "\\n")


if os.environ.get("BOTOCOUNT_FILE"):
    _install()
    atexit.register(_dump)
"""

#: Reads of items (or messages): never part of start-up.
ITEM_READS = {
    "dynamodb:Scan",
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "sqs:ReceiveMessage",
}
#: Foreign items per table; the runs below set the scan limit under it.
FOREIGN = 60
SCAN_LIMIT = 50


def seed_foreign(aws: Aws, count: int) -> list[int]:
    """``count`` items nobody's test wrote, in each of the service's tables; their uids."""
    profile = aws.profile
    users = aws.table(profile.setting("users_table"))
    tokens = aws.table(profile.setting("tokens_table"))
    notes = aws.table(profile.setting("notifications_table"))
    uids = [secrets.randbits(52) for _ in range(count)]
    with users.batch_writer() as u, tokens.batch_writer() as t, notes.batch_writer() as n:
        for i, uid in enumerate(uids):
            email = f"staff{i}-{secrets.token_hex(4)}@corp.example.com"
            u.put_item(Item={"Uid": uid, "Email": email, "Name": "Staff", "PasswordHash": "x"})
            t.put_item(Item={"Uid": uid, "Token": "t", "TimeToLive": 4102444800})
            n.put_item(Item={"Uid": uid, "NotificationId": "n1", "Email": email, "Kind": "welcome"})
    return uids


@pytest.fixture(scope="module")
def big_tables(aws: Aws) -> Iterator[Aws]:
    uids = seed_foreign(aws, FOREIGN)
    yield aws
    profile = aws.profile  # the shared sandbox goes back to how other tests expect it
    users = aws.table(profile.setting("users_table"))
    tokens = aws.table(profile.setting("tokens_table"))
    notes = aws.table(profile.setting("notifications_table"))
    with users.batch_writer() as u, tokens.batch_writer() as t, notes.batch_writer() as n:
        for uid in uids:
            u.delete_item(Key={"Uid": uid})
            t.delete_item(Key={"Uid": uid})
            n.delete_item(Key={"Uid": uid, "NotificationId": "n1"})


def counted(
    args: list[str], environ: dict[str, str], tmp_path: Path
) -> tuple[subprocess.CompletedProcess, Counter[str]]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    counts_file = tmp_path / f"counts-{secrets.token_hex(3)}.jsonl"
    env = dict(environ)
    env["PYTHONPATH"] = f"{site}:{environ.get('PYTHONPATH', '')}"
    env["BOTOCOUNT_FILE"] = str(counts_file)
    env["HARNESS_STATE_DIR"] = str(tmp_path / "state")
    done = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    counts: Counter[str] = Counter()
    for line in counts_file.read_text(encoding="utf-8").splitlines():
        counts.update(json.loads(line))
    return done, counts


def smoke(environ: dict[str, str], tmp_path: Path, scan_limit: int) -> tuple[str, Counter[str]]:
    report = str(tmp_path / "report.json")
    pytest_args = ["-p", "no:cacheprovider", f"--residue-scan-limit={scan_limit}"]
    done, counts = counted(
        ["run", "--suite", "smoke", "--report", report, "--", *pytest_args], environ, tmp_path
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr, counts


def test_a_smoke_run_against_big_tables_issues_no_scan(
    big_tables: Aws, sandbox_environ: dict[str, str], tmp_path: Path
) -> None:
    output, counts = smoke(sandbox_environ, tmp_path, SCAN_LIMIT)
    assert counts["dynamodb:Scan"] == 0, counts
    # The residue check looked the run's items up by key, all of a kind in one call.
    assert counts["dynamodb:BatchGetItem"] >= 1, counts
    assert counts["dynamodb:GetItem"] <= 10, counts
    # One DescribeTable per table (users, tokens, notifications, leases), at preflight: the
    # residue check's size rule reuses those counts.
    assert counts["dynamodb:DescribeTable"] <= 4, counts
    # The leaked-queue look reads the events topic's subscriptions, never the account's.
    assert counts["sns:ListSubscriptions"] == 0, counts
    assert counts["sns:ListSubscriptionsByTopic"] >= 1, counts
    assert "left to the sweeper" in output


def test_the_counter_sees_the_bounded_scan_of_small_tables(
    big_tables: Aws, sandbox_environ: dict[str, str], tmp_path: Path
) -> None:
    """The same run with a scan limit above the tables' size looks namespace-wide with a
    Scan per table: the counting above is real, and the limit is what prevents the scans."""
    _, counts = smoke(sandbox_environ, tmp_path, 10_000_000)
    assert counts["dynamodb:Scan"] >= 3, counts


def test_doctor_describes_and_never_reads_items(
    big_tables: Aws, sandbox_environ: dict[str, str], tmp_path: Path
) -> None:
    done, counts = counted(["doctor", "--no-start"], sandbox_environ, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert counts["dynamodb:DescribeTable"] >= 3, counts
    assert not set(counts) & ITEM_READS, counts


def test_preflight_makes_one_describe_per_table(
    big_tables: Aws, sandbox_environ: dict[str, str]
) -> None:
    profile = load_profile("sandbox", REPO / "environments.toml", environ=sandbox_environ)
    aws = Aws(profile)
    kinds = load_kinds(profile, aws)
    calls: Counter[str] = Counter()
    aws.session.events.register(
        "before-call", lambda model=None, **_: calls.update([model.name]) if model else None
    )
    sizes = preflight.check_aws(profile, aws, kinds)
    assert sizes[profile.setting("users_table")] >= FOREIGN
    tables = {
        profile.setting(name) for name in ("users_table", "tokens_table", "notifications_table")
    }
    assert calls == Counter({"DescribeTable": len(tables | {profile.lease_table} - {""})}), calls
