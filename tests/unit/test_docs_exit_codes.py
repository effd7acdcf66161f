"""The exit statuses the docs promise are the ones the code returns: the README's and
docs/ci.md's tables, `harness run --help` and outcome.py's own table all list exactly
harness.run.outcome.WORDS, number for number, word for word."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from harness.cli.main import RUN_EPILOG
from harness.run import outcome

REPO = Path(__file__).resolve().parents[2]
# Under mutation testing the tree is mutmut's copy of the code, without the README and docs/.
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("HARNESS_MUTATION_RUN")), reason="checks the checkout's own documents"
)
ROW = re.compile(r"^\| (\d+) \| `([a-z_]+)` \|", re.MULTILINE)
# mutmut's copy of the tree has no README.md nor docs/ (what this proves, other tests do too)
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("HARNESS_MUTATION_RUN")), reason="checks the checkout's own documents"
)

# Under mutation testing the tree is mutmut's copy of the code, without the README and docs/.
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("HARNESS_MUTATION_RUN")), reason="checks the checkout's own documents"
)


@pytest.mark.parametrize("doc", ["README.md", "docs/ci.md"])
def test_each_exit_table_is_the_codes_table(doc: str) -> None:
    rows = [(int(n), word) for n, word in ROW.findall((REPO / doc).read_text(encoding="utf-8"))]
    assert rows == sorted(outcome.WORDS.items()), doc


def test_the_module_table_and_the_run_help_name_every_code() -> None:
    table = outcome.__doc__ or ""
    for status, word in outcome.WORDS.items():
        assert re.search(rf"^{status}\s+{word}\s", table, re.MULTILINE), (status, word)
        assert re.search(rf"\b{status} [a-z]", RUN_EPILOG), status


def test_adapters_guide_gives_no_exit_code_the_table_lacks() -> None:
    """Every number in a sentence about exit statuses is one of the table's (the guide once
    said 2 for a bad configuration, a code the harness never returns)."""
    text = " ".join((REPO / "docs" / "adapters.md").read_text(encoding="utf-8").split())
    sentences = re.findall(r"[Ee]xit(?:s| status)?\b[^.]*\.", text)
    assert len(sentences) >= 3
    for sentence in sentences:
        for found in re.findall(
            r"\b(\d+)(?:,| (?:all|a|an|the|if|when|while|bad|every|\())", sentence
        ):
            assert int(found) in outcome.WORDS, (found, sentence)
