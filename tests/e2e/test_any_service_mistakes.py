"""Adapter mistakes caught before the service is called, and rows a fixture writes itself —
against the notes service, from the separate project of test_any_service.py (the wheel in a
fresh venv, the project written from docs/adapters.md's snippets), with every request the
project's runs send counted by a fault-free proxy in front of the service.

A typo'd kind and a name without the run namespace are refused by ``ledger.create`` with the
service never called; an ``fn`` that answers a string is named in one line and its account
cleaned up by the recorded intent; ``ledger.put`` writes the doc's seeded account without
``/register`` and refuses a row outside the namespace; nothing is left, nothing foreign is
touched, and ``harness recover`` exits 0 afterwards. A journal the old ledger left (a refused
create of a name without the namespace, a typo'd kind) is settled by ``harness recover
--forget``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cleanup.journal import Journal
from tests.e2e import test_any_service as any_service
from tests.e2e.test_any_service import DOC, Installed, Tables, journals, report, shown
from tests.faultproxy import FaultPlan, FaultProxy
from tests.services.test_notes_service import Service

pytestmark = pytest.mark.e2e

# test_any_service.py's fixtures: the installed wheel, the notes service, its tables, and
# someone else's data in them (asserted untouched)
installed = any_service.installed
service = any_service.service
tables = any_service.tables
foreign = any_service.foreign

SUITES_MISTAKES = '''\
"""Three mistakes in ledger.create: each must be refused with one line."""


def register(api, name):
    def call():
        reply = api.post("/register", json={"username": name, "password": "pw-mistake"})
        assert reply.status_code == 201, reply.text
        return reply.json()

    return call


def test_a_typod_kind(api, ledger, namespace):
    name = namespace.name("typo")
    ledger.create("acount", {"username": name}, register(api, name))


def test_a_name_without_the_namespace(api, ledger):
    ledger.create("account", {"username": "plain-dave"}, register(api, "plain-dave"))


def test_fn_answers_a_string(api, ledger, namespace):
    name = namespace.name("text")

    def register_text():
        return api.post("/register", json={"username": name, "password": "pw-text"}).text

    ledger.create("account", {"username": name}, register_text)
'''

SUITES_SEEDED = '''\
"""Accounts written with ledger.put (docs/adapters.md's fixtures/seeded.py), no /register."""

from fixtures.seeded import seeded_account  # noqa: F401


def test_a_seeded_account_logs_in_and_writes_a_note(api, seeded_account, env):
    assert env.kinds["account"]["table"] == "accounts"
    me = api.get("/me", auth=seeded_account.auth)
    assert me.status_code == 200 and me.json()["username"] == seeded_account.username
    assert api.post("/notes", json={"text": "hi"}, auth=seeded_account.auth).status_code == 201


def test_put_refuses_a_name_without_the_namespace(ledger):
    ledger.put("account", {"username": "plain-erin", "password_hash": "x", "created_at": "x"})
'''

EMPTY = {"accounts": 0, "notes": 0, "sessions": 0}


@pytest.fixture
def proxy(service: Service) -> Iterator[FaultProxy]:
    """The service behind a proxy that injects nothing and counts every request by route."""
    with FaultProxy(service.url, FaultPlan()) as counting:
        yield counting


@pytest.fixture
def project(tmp_path: Path, service: Service, proxy: FaultProxy) -> Path:
    root = any_service.write_project(tmp_path / "my-notes-tests", service)
    profile = root / "environments.toml"
    profile.write_text(profile.read_text().replace(service.url, proxy.url))
    seeded = dict(re.findall(r"```python\n# ([\w./]+)\n(.*?)```", DOC.read_text(), re.S))
    (root / "fixtures" / "seeded.py").write_text(seeded["fixtures/seeded.py"])
    (root / "suites" / "test_mistakes.py").write_text(SUITES_MISTAKES)
    (root / "suites" / "test_seeded.py").write_text(SUITES_SEEDED)
    return root


def documented_refusals() -> list[str]:
    """The refusal lines docs/adapters.md §4 shows (its ``text`` block)."""
    blocks = re.findall(r"```text\n(harness: .*?)```", DOC.read_text(), re.S)
    (block,) = [b for b in blocks if "no resource kind" in b]
    return block.strip().splitlines()


def refusal_lines(output: str) -> list[str]:
    """The failures' one-line messages (``pytest.fail(..., pytrace=False)``: the bare line);
    not the summary's own ``harness: history: …`` line."""
    return [
        line
        for line in output.splitlines()
        if line.startswith("harness: ") and not line.startswith("harness: history: ")
    ]


def test_mistakes_in_ledger_create_are_refused_before_the_service_is_called(
    installed: Installed, project: Path, proxy: FaultProxy, tables: Tables, foreign: Any
) -> None:
    run = installed.run(
        ["pytest", "-q", "--harness-report=mistakes.json", "suites/test_mistakes.py"],
        cwd=project,
    )
    assert run.returncode == 1, shown(run)  # three tests failed, each with one line
    lines = refusal_lines(run.stdout)
    for documented in documented_refusals():  # the doc's lines, word for word
        assert documented in lines, (documented, shown(run))
    (text,) = [line for line in lines if "register_text" in line]
    assert re.search(
        r"harness: ledger.create\('account', …\): "
        r"test_fn_answers_a_string\.<locals>\.register_text\(\) \(\S+/suites/test_mistakes.py:"
        r"\d+\) returned str '.*', not the ids the account is deleted by; return a mapping "
        r"such as reply\.json\(\) \(the intent \{'username': 'itest-\S+-text'\} is kept and "
        r"cleaned up by it\)$",
        text,
    ), text
    assert "harness/cleanup/ledger.py" not in run.stdout + run.stderr, shown(run)  # no traceback
    assert "Traceback" not in run.stdout + run.stderr, shown(run)
    assert "During handling" not in run.stdout, shown(run)  # one line, no chained exception
    # the typo and the name without the namespace never reached the service: the one
    # registration is the string-answering fn's (its account then cleaned by its intent)
    assert proxy.routes["POST /register"] == 1, proxy.routes
    resources = report(project / "mistakes.json")["resources"]
    assert resources["created"] == resources["cleaned"] == 1, resources
    assert resources["leaked"] == 0 and resources["cleanup_failed"] == 0, resources
    assert tables.count() == EMPTY and tables.count(("plain-dave",)) == EMPTY
    assert journals(project) == []
    recovered = installed.run(["harness", "recover", "--env", "local"], cwd=project)
    assert recovered.returncode == 0 and "no dead run" in recovered.stdout, shown(recovered)


def test_a_fixture_writes_its_account_row_through_the_ledger(
    installed: Installed, project: Path, proxy: FaultProxy, tables: Tables, foreign: Any
) -> None:
    run = installed.run(
        ["pytest", "-q", "--harness-report=seeded.json", "suites/test_seeded.py"],
        cwd=project,
    )
    assert run.returncode == 1, shown(run)  # the refused put fails its test; the other passes
    assert "1 failed, 1 passed" in run.stdout, shown(run)
    (refused,) = refusal_lines(run.stdout)
    assert "During handling" not in run.stdout, shown(run)
    assert refused == (
        "harness: refusing to create account(username=plain-erin): it carries no harness "
        "namespace (the kind's marker is what cleanup checks before deleting it); name it "
        "with namespace.name() or namespace.email()"
    ), shown(run)
    assert proxy.routes["POST /register"] == 0 and proxy.routes["POST /login"] == 1, proxy.routes
    resources = report(project / "seeded.json")["resources"]
    assert resources["created"] == resources["cleaned"] == 1, resources
    # its login's session row and its note: the service's, removed with the account
    assert resources["belonging"] >= 2 and resources["leaked"] == 0, resources
    assert "item(s) the service wrote for recorded resources removed with them" in run.stdout
    assert tables.count() == EMPTY and tables.count(("plain-erin",)) == EMPTY
    recovered = installed.run(["harness", "recover", "--env", "local"], cwd=project)
    assert recovered.returncode == 0 and "no dead run" in recovered.stdout, shown(recovered)


def test_an_old_journal_of_refused_creates_is_settled_by_forget(
    installed: Installed, project: Path, proxy: FaultProxy, tables: Tables
) -> None:
    """What the ledger wrote before it checked creates: an account without the namespace
    (created, then deleted by hand) and a typo'd kind. Recovery refuses them (exit 6, and
    says how to settle); ``--forget`` settles them once the first is checked gone."""
    run_id = "itest-20260101t000000-oldj"
    folder = project / ".harness" / "runs" / run_id
    journal = Journal(folder / "gw0.jsonl")
    journal.append("intent", 1, kind="account", ids={"username": "plain-dave"}, scope="t")
    journal.append("created", 1, ids={"username": "plain-dave"})
    name = f"{run_id}-gw0-typo"
    journal.append("intent", 2, kind="acount", ids={"username": name}, scope="t")
    journal.append("created", 2, ids={"username": name})
    journal.close()

    refused = installed.run(["harness", "recover", run_id, "--env", "local"], cwd=project)
    assert refused.returncode == 6, shown(refused)
    assert "2 refused" in refused.stdout, shown(refused)
    assert f"`harness recover --forget {run_id}`" in refused.stdout, shown(refused)
    forgot = installed.run(
        ["harness", "recover", "--forget", run_id, "--env", "local"], cwd=project
    )
    assert forgot.returncode == 0, shown(forgot)
    assert "forgot account(username=plain-dave): it is gone" in forgot.stdout, shown(forgot)
    assert "kind 'acount' unknown here, not checked" in forgot.stdout, shown(forgot)
    assert journals(project) == []
    again = installed.run(["harness", "recover", "--env", "local"], cwd=project)
    assert again.returncode == 0 and "no dead run" in again.stdout, shown(again)
    assert tables.count() == EMPTY
