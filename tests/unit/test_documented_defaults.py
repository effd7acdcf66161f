"""Defaults the documentation states, compared with the code's: the figure a reader plans by
must be the one the run uses."""

from __future__ import annotations

import os
import re

import pytest

from harness.cleanup.residue import DEFAULT_SCAN_LIMIT
from harness.cli.main import _parser
from harness.reporting.plugin import _MAX_MESSAGE
from harness.safety.redact import SHOWN, SHOWN_TEXT
from tests.conftest import REPO

# Under mutation testing the checkout's documents are not copied: this checks them against
# the code's figures, not behaviour, so it has nothing to kill.
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("HARNESS_MUTATION_RUN")), reason="checks the checkout's own documents"
)

DOCUMENTS = ("README.md", "docs/adapters.md", "docs/cost-model.md")


def _figure(text: str) -> int:
    return int(re.sub(r"[,\s]", "", text))


def _residue_help() -> str:
    commands = next(a for a in _parser()._actions if a.dest == "command")
    return " ".join(commands.choices["residue"].format_help().split())  # type: ignore[index]


def test_the_residue_scan_limit_default_is_stated_as_the_code_has_it() -> None:
    """README, adapters.md and cost-model.md (`--residue-scan-limit`) and `harness residue
    --help` (`--scan-limit`) against harness.cleanup.residue.DEFAULT_SCAN_LIMIT."""
    stated: dict[str, list[int]] = {}
    for document in DOCUMENTS:
        text = (REPO / document).read_text(encoding="utf-8")
        found = re.findall(
            r"`--residue-scan-limit`\s+items\s*\(default\s+(\d[\d,]*(?: \d{3})*)", text
        )
        stated[document] = [_figure(s) for s in found]
    found = re.findall(r"\(default (\d[\d,]*); 0: never\)", _residue_help())
    stated["harness residue --help"] = [_figure(s) for s in found]
    assert stated == {where: [DEFAULT_SCAN_LIMIT] for where in stated}


def test_the_readme_states_the_caps_of_long_bodies_as_the_code_has_them() -> None:
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    said = re.search(
        r"is shown up to ([\d,]+) characters \(a failure's lines together and a captured "
        r"section up to ([\d,]+)\), ending `… \[N characters cut\]`; the one-line failure in "
        r"the JSON report, summary and alert up to (\d+)\.",
        text,
    )
    assert said is not None, "the README no longer states the caps"
    assert [_figure(f) for f in said.groups()] == [SHOWN, SHOWN_TEXT, _MAX_MESSAGE]


def test_the_readmes_store_residue_row_says_what_the_last_bench_measured() -> None:
    """The README says the stores' residue target is met for SQL and missed for Cognito and
    S3 (on the emulator): the figures docs/performance.md holds must say the same, and the
    harness's own calls per check must be the same on both sides."""
    table = (REPO / "docs" / "performance.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z0-9_]+)` \| ([^|]*?) \|", table, re.M))
    met = dict(
        re.findall(r"^\| `([a-z0-9_]+)` \| [^|]*? \| [^|]*? \| \**(yes|no)\** \|", table, re.M)
    )
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "met for SQL; not for Cognito and S3 on the emulator" in readme
    assert met["residue_sql_big_vs_empty"] == "yes"
    assert met["residue_cognito_big_vs_empty"] == met["residue_s3_big_vs_empty"] == "no"
    for store in ("cognito", "s3"):
        assert rows[f"residue_{store}_calls_empty"] == rows[f"residue_{store}_calls_big"]
