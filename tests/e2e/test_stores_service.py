"""Any service, whichever store its test data lives in: the shop service (tests/services/
shop_service: users in a Cognito pool, files in a versioned S3 bucket, orders in PostgreSQL)
tested from a separate project with **declared kinds only** — its profile is the snippet of
docs/adapters.md §13, its suites use only the plugin's generic fixtures (``cognito_user``,
``ledger``, ``api``) — by the wheel installed in a fresh venv (tests/e2e/test_any_service.py).

Against the emulator in server mode and a real PostgreSQL server: the suites pass with plain
``pytest``, ``-n 2`` and ``harness run`` and leave nothing (what the service wrote by itself
— welcome files, the files and orders ``DELETE /me`` forgets, the versions and delete markers
of a file deleted through the service — is found by its marker and removed); a leak in each
store fails the run and is removed; a SIGKILLed run is recovered (``harness recover``) and
swept (``harness sweep``) in each store; foreign users, objects and rows — ``alice``'s, a
harness-shaped name on a real mail domain, keys outside the kind's prefix — are untouched:
digests of the pool, the bucket (every version) and the table are the same before and after.

On the old code every test here fails at its first run: ``type = "cognito"`` (and s3, sql)
is refused as an unknown field of a declared kind (exit 8), and without these kinds a run
cannot find, check or delete a Cognito user, an S3 object or a SQL row at all.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import requests

from tests.e2e.test_any_service import (  # noqa: F401 - installed is a fixture
    REPO,
    Installed,
    doc_files,
    installed,
    journals,
    report,
    shown,
)
from tests.services.test_shop_service import Shop, start_shop

pytestmark = pytest.mark.e2e

#: Other people's data: a plain name, and a harness-shaped name on a real mail domain (its
#: run id parses; the ownership gate must still refuse it, and everything it owns).
FOREIGN = ("alice", "itest-20260101t000000-abcd-main-x@gmail.com")
#: Harness-shaped keys outside the kind's prefix ("files/"), or with the namespace not first.
FOREIGN_KEYS = (
    "backup/itest-20260101t000000-abcd-main-x/a.txt",
    "files/x-itest-20260101t000000-abcd-main-y/b.txt",
)
PASSWORD = "Passw0rd!x"

SUITES_SHOP = """\
import pytest


@pytest.mark.smoke
@pytest.mark.readonly
def test_status(api):
    assert api.get("/status").json() == {"ok": True}


@pytest.mark.smoke
def test_me(api, cognito_user):
    user = cognito_user()
    assert api.get("/me", auth=user.auth).json() == {"username": user.username}


def test_a_recorded_file(api, ledger, cognito_user):
    user = cognito_user()
    ledger.create(
        "upload",
        {"key": f"files/{user.username}/notes.txt"},
        lambda: api.put("/files/notes.txt", data=b"hi", auth=user.auth).json(),
    )
    assert api.get("/files", auth=user.auth).json()["files"] == ["notes.txt"]


def test_a_file_deleted_through_the_service_leaves_its_versions(api, ledger, cognito_user):
    user = cognito_user()
    ledger.create(
        "upload",
        {"key": f"files/{user.username}/old.txt"},
        lambda: api.put("/files/old.txt", data=b"1", auth=user.auth).json(),
    )
    assert api.put("/files/old.txt", data=b"2", auth=user.auth).status_code == 201
    assert api.delete("/files/old.txt", auth=user.auth).status_code == 204
    assert "old.txt" not in api.get("/files", auth=user.auth).json()["files"]


def test_a_recorded_order(api, ledger, cognito_user):
    user = cognito_user()
    order = ledger.create(
        "order",
        {"owner": user.username},
        lambda: api.post("/orders", json={"item": "pen", "qty": 2}, auth=user.auth).json(),
    )
    listed = api.get("/orders", auth=user.auth).json()["orders"]
    assert [o["id"] for o in listed] == [order.ids["id"]]


def test_delete_me_is_sloppy(api, cognito_user):
    user = cognito_user()
    assert api.put("/files/left.txt", data=b"x", auth=user.auth).status_code == 201
    assert api.post("/orders", json={"item": "left"}, auth=user.auth).status_code == 201
    assert api.delete("/me", auth=user.auth).status_code == 204
    assert api.get("/me", auth=user.auth).status_code == 401
    # its files and its order stay behind: they belong to the user


def test_two_users_do_not_see_each_other(api, cognito_user):
    one, two = cognito_user(), cognito_user()
    assert api.post("/orders", json={"item": "mine"}, auth=one.auth).status_code == 201
    assert api.get("/orders", auth=two.auth).json()["orders"] == []
"""

SUITES_SCENARIOS = """\
import os
import time
from pathlib import Path

import psycopg
import pytest

SCENARIO = os.environ.get("SHOP_SCENARIO", "")


@pytest.mark.skipif(SCENARIO != "leak-member", reason="only when asked")
def test_signs_up_without_the_ledger(api, namespace):
    body = {"username": namespace.name("leak"), "password": "Passw0rd!x"}
    assert api.post("/signup", json=body).status_code == 201  # and its welcome file


@pytest.mark.skipif(SCENARIO != "leak-upload", reason="only when asked")
def test_writes_a_file_without_the_ledger(env, harness_session, namespace):
    bucket = env.kinds["upload"]["bucket"]
    key = f"files/{namespace.name('stray')}/x.txt"
    harness_session.aws.s3.put_object(Bucket=bucket, Key=key, Body=b"x")


@pytest.mark.skipif(SCENARIO != "leak-order", reason="only when asked")
def test_inserts_a_row_without_the_ledger(namespace):
    with psycopg.connect(os.environ["ORDERS_DB_URL"]) as connection:
        connection.execute(
            "INSERT INTO orders (owner, item, qty) VALUES (%s, 'stray', 1)",
            [namespace.name("stray")],
        )


@pytest.mark.skipif(SCENARIO != "crash", reason="only when asked")
def test_killed_mid_test(api, ledger, cognito_user):
    user = cognito_user()
    ledger.create(
        "upload",
        {"key": f"files/{user.username}/a.txt"},
        lambda: api.put("/files/a.txt", data=b"a", auth=user.auth).json(),
    )
    ledger.create(
        "order",
        {"owner": user.username},
        lambda: api.post("/orders", json={"item": "x"}, auth=user.auth).json(),
    )
    Path(os.environ["SHOP_READY_FILE"]).write_text(user.username)
    time.sleep(300)  # SIGKILLed here
"""

#: Tests of a normal run: test_shop.py's seven pass; the four scenarios are skipped.
NORMAL_PASSED = 7


def write_project(root: Path, shop: Shop) -> Path:
    """The user's project: docs/adapters.md's shop profile pointed at ``shop``, and suites —
    no fixtures/ and no adapter module: declared kinds and the plugin's fixtures only."""
    assert not root.resolve().is_relative_to(REPO)
    profile = doc_files()["shop/environments.toml"]
    for field, value in (
        ("base_url", shop.url),
        ("aws_endpoint_url", shop.aws_endpoint),
        ("user_pool_id", shop.pool_id),
        ("client_id", shop.client_id),
        ("bucket", shop.bucket),
    ):
        profile, count = re.subn(rf'(?m)^{field} = "[^"]*"', f'{field} = "{value}"', profile)
        assert count == 1, (field, profile)
    files = {
        "environments.toml": profile,
        "suites/__init__.py": "",
        "suites/test_shop.py": SUITES_SHOP,
        "suites/test_scenarios.py": SUITES_SCENARIOS,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class Stores:
    """The shop's pool, bucket and table read directly (boto3, psycopg), as plain data."""

    def __init__(self, shop: Shop) -> None:
        options: dict[str, Any] = {
            "endpoint_url": shop.aws_endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }
        self.shop = shop
        self.cognito = boto3.client("cognito-idp", **options)
        self.s3 = boto3.client("s3", **options)

    def users(self) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        found = []
        for page in self.cognito.get_paginator("list_users").paginate(UserPoolId=self.shop.pool_id):
            for user in page["Users"]:
                attributes = sorted((a["Name"], a["Value"]) for a in user["Attributes"])
                found.append((user["Username"], tuple(attributes)))
        return sorted(found)

    def objects(self) -> list[tuple[str, str, str]]:
        found = []
        pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=self.shop.bucket)
        for page in pages:
            for what in ("Versions", "DeleteMarkers"):
                for v in page.get(what, []):
                    found.append((v["Key"], str(v.get("VersionId")), v.get("ETag", what)))
        return sorted(found)

    def rows(self) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.shop.database_url) as connection:
            return connection.execute("SELECT * FROM orders ORDER BY id").fetchall()

    def digest(self) -> dict[str, list[Any]]:
        return {"users": self.users(), "objects": self.objects(), "rows": self.rows()}

    def of(self, foreign: bool) -> dict[str, list[Any]]:
        """Every foreign item (``foreign``), or every harness-made one: by the marker each
        store carries (username, the key after ``files/``, the owner column)."""

        def harness(marker: str) -> bool:
            return marker.startswith("itest-") and not any(marker.startswith(f) for f in FOREIGN)

        digest = self.digest()
        return {
            "users": [u for u in digest["users"] if harness(u[0]) != foreign],
            "objects": [
                o for o in digest["objects"] if harness(o[0].removeprefix("files/")) != foreign
            ],
            "rows": [r for r in digest["rows"] if harness(str(r[1])) != foreign],
        }

    def count(self) -> dict[str, int]:
        """How many harness-made users, object versions and rows there are."""
        return {store: len(items) for store, items in self.of(foreign=False).items()}


NOTHING = {"users": 0, "objects": 0, "rows": 0}


@pytest.fixture
def venv(installed: Installed) -> Installed:  # noqa: F811 - the wheel's venv, with [sql]
    return installed


@pytest.fixture
def shop() -> Iterator[Shop]:
    service = start_shop()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def stores(shop: Shop) -> Stores:
    return Stores(shop)


@pytest.fixture
def project(tmp_path: Path, shop: Shop) -> Path:
    return write_project(tmp_path / "my-shop-tests", shop)


def signed_up(shop: Shop, name: str) -> dict[str, str]:
    body = {"username": name, "password": PASSWORD}
    assert requests.post(f"{shop.url}/signup", json=body).status_code == 201
    token = requests.post(f"{shop.url}/login", json=body).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def someone(shop: Shop, name: str) -> None:
    """A user of the service with a file and an order (someone else's, or a run that died
    on another machine)."""
    auth = signed_up(shop, name)
    assert requests.put(f"{shop.url}/files/a.txt", data=b"a", headers=auth).status_code == 201
    order = requests.post(f"{shop.url}/orders", json={"item": "x"}, headers=auth)
    assert order.status_code == 201


@pytest.fixture
def foreign(shop: Shop, stores: Stores) -> Iterator[dict[str, list[Any]]]:
    """Someone else's users, objects (versions) and rows; asserted untouched after the test."""
    for name in FOREIGN:
        someone(shop, name)
    for key in FOREIGN_KEYS:
        stores.s3.put_object(Bucket=shop.bucket, Key=key, Body=b"keep")
    before = stores.of(foreign=True)
    assert {store: len(items) for store, items in before.items()} == {
        "users": 2,
        "objects": 6,
        "rows": 2,
    }
    yield before
    assert stores.of(foreign=True) == before, "a foreign item was touched"


def run(venv: Installed, shop: Shop, project: Path, *args: str, **extra: str) -> Any:
    return venv.run(list(args), project, 120, ORDERS_DB_URL=shop.database_url, **extra)


def test_plain_pytest_xdist_and_harness_run_pass_and_leave_nothing(
    venv: Installed, shop: Shop, project: Path, stores: Stores, foreign: Any
) -> None:
    plain = run(venv, shop, project, "pytest", "-q", "--harness-report=plain.json")
    assert plain.returncode == 0, shown(plain)
    assert "residue check: clean" in plain.stdout, shown(plain)
    parallel = run(venv, shop, project, "pytest", "-q", "-n", "2", "--harness-report=parallel.json")
    assert parallel.returncode == 0, shown(parallel)
    cli = run(venv, shop, project, "harness", "run", "--env", "local", "-n", "2")
    assert cli.returncode == 0, shown(cli)
    for name in ("plain.json", "parallel.json", "harness-report.json"):
        outcome = report(project / name)
        assert outcome["exit_status"] == 0 and outcome["leaked"] == [], outcome
        assert outcome["tests"]["passed"] == NORMAL_PASSED, outcome["tests"]
        resources = outcome["resources"]
        # seven users, two files, one order; DELETE /me's user was already gone ("absent")
        assert resources["created"] == resources["cleaned"] == 10, resources
        # the file and the order DELETE /me forgot, the order of test_two_users: found by
        # their marker, removed with their user, not leaks
        assert resources["belonging"] >= 3, resources
    assert stores.count() == NOTHING
    assert journals(project) == []


@pytest.mark.parametrize(
    ("scenario", "kind", "left"),
    [
        ("leak-member", "member", "-leak"),
        ("leak-upload", "upload", "-stray/x.txt"),
        ("leak-order", "order", "-stray"),
    ],
)
def test_a_leak_in_each_store_fails_the_run_and_is_removed(
    venv: Installed,
    shop: Shop,
    project: Path,
    stores: Stores,
    foreign: Any,
    scenario: str,
    kind: str,
    left: str,
) -> None:
    cli = run(
        venv,
        shop,
        project,
        *("harness", "run", "--env", "local", "suites/test_scenarios.py"),
        SHOP_SCENARIO=scenario,
    )
    assert cli.returncode == 6, shown(cli)  # 6: the tests passed, something leaked
    assert f"leaked {kind}" in cli.stdout, shown(cli)
    leaked = report(project / "harness-report.json")["leaked"]
    markers = {
        "member": [i.get("username") for i in leaked if i["kind"] == "member"],
        "upload": [i.get("key") for i in leaked if i["kind"] == "upload"],
        "order": [i.get("owner") for i in leaked if i["kind"] == "order"],
    }[kind]
    assert len(markers) == 1 and str(markers[0]).endswith(left), leaked
    if kind == "member":  # what the service wrote for the leaked user is part of the leak
        assert any(str(i.get("key", "")).endswith("-leak/welcome.txt") for i in leaked), leaked
    assert stores.count() == NOTHING  # and removed


def kill_mid_test(venv: Installed, shop: Shop, project: Path, stores: Stores) -> str:
    """A run whose test records a user, a file and an order, SIGKILLed mid-test; the name of
    the user it left (with its file and its order)."""
    ready = project / "ready.txt"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [str(venv.bin / "pytest"), "-q", "--env", "local", "suites/test_scenarios.py"],
        cwd=project,
        env=venv.environ(
            SHOP_SCENARIO="crash", SHOP_READY_FILE=str(ready), ORDERS_DB_URL=shop.database_url
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text():
            assert proc.poll() is None, f"the run ended by itself ({proc.returncode})"
            assert time.monotonic() < deadline, "the run never reached its test"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert stores.count() == {"users": 1, "objects": 1, "rows": 1}
    return ready.read_text()


def test_a_killed_run_is_recovered_in_each_store(
    venv: Installed, shop: Shop, project: Path, stores: Stores, foreign: Any
) -> None:
    name = kill_mid_test(venv, shop, project, stores)
    (run_id,) = journals(project)
    assert name.startswith(run_id)
    recovered = run(venv, shop, project, "harness", "recover", "--env", "local")
    assert recovered.returncode == 0, shown(recovered)
    assert f"run {run_id}: 3 deleted" in recovered.stdout, shown(recovered)
    assert stores.count() == NOTHING
    assert journals(project) == []


def test_a_killed_run_is_swept_in_each_store(
    venv: Installed, shop: Shop, project: Path, stores: Stores, foreign: Any
) -> None:
    kill_mid_test(venv, shop, project, stores)
    shutil.rmtree(project / ".harness")  # as if it had died on another machine
    someone(shop, "itest-20260101t000000-wxyz-gw1-old")  # an older run's leftovers
    assert stores.count() == {"users": 2, "objects": 3, "rows": 2}
    before = stores.digest()
    sweep = ("harness", "sweep", "--env", "local", "--older-than", "0")
    dry = run(venv, shop, project, *sweep)
    assert dry.returncode == 0, shown(dry)
    assert "1 member, 1 order, 1 upload" in dry.stdout, shown(dry)  # the killed run's
    assert "1 member, 1 order, 2 upload" in dry.stdout, shown(dry)  # the older run's
    assert "not harness data (fails the ownership gate): 4 item(s)" in dry.stdout, shown(dry)
    assert "total: 7 item(s) in 2 run(s)" in dry.stdout and "dry run" in dry.stdout, shown(dry)
    assert stores.digest() == before
    swept = run(venv, shop, project, *sweep, "--yes")
    assert swept.returncode == 0, shown(swept)
    assert "deleted 7 item(s)" in swept.stdout, shown(swept)
    assert stores.count() == NOTHING


def test_doctor_checks_each_store(venv: Installed, shop: Shop, project: Path) -> None:
    doctor = run(venv, shop, project, "harness", "doctor")
    assert doctor.returncode == 0, shown(doctor)
    lines = doctor.stdout.splitlines()
    for row in (
        f"kind member user pool {shop.pool_id}",
        f"kind upload bucket {shop.bucket} (versioned",
        "kind order table orders",
        "kind order marker owner indexed (orders_owner)",
    ):
        assert any(line.startswith("OK") and row in " ".join(line.split()) for line in lines), (
            row,
            shown(doctor),
        )
    unset = venv.run(["harness", "doctor"], cwd=project)  # no ORDERS_DB_URL
    assert unset.returncode == 1, shown(unset)
    assert "$ORDERS_DB_URL is not set: export it" in unset.stdout, shown(unset)
    refused = venv.run(["harness", "run"], cwd=project)
    assert refused.returncode == 8, shown(refused)  # bad input: one line naming the fix
    assert "$ORDERS_DB_URL is not set: export it" in refused.stderr, shown(refused)
    password = shop.database_url.split("@")[0].rsplit(":", 1)[1]
    assert password not in unset.stdout + refused.stdout + refused.stderr + doctor.stdout
