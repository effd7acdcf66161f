"""The history's documented commands are the CLI's: every `harness …` line of the README's
*Runs with memory* block and of docs/ci.md's balanced-shards recipe parses as written, and
the documented exit 8 for bad input is what the commands return."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from harness.cli.main import _parser, main

REPO = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Runs with memory", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in section.splitlines() if line.strip()]


def ci_commands() -> list[str]:
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    section = text.split("## Balanced shards, one report", 1)[1]
    blocks = re.findall(r"run: >\n((?:          .*\n)+)", section)
    commands = [" ".join(line.strip() for line in block.splitlines()) for block in blocks]
    return [re.sub(r"\$\{\{[^}]*\}\}", "1", c) for c in commands if c.startswith("harness ")]


@pytest.mark.parametrize("line", readme_commands() + ci_commands())
def test_each_documented_history_command_parses(line: str) -> None:
    words = shlex.split(line)
    assert words[0] == "harness"
    options, unknown = _parser().parse_known_args(words[1:])
    assert options.command in ("run", "history", "quarantine", "merge")
    assert unknown == [], line


def test_the_documented_commands_are_all_there() -> None:
    assert {shlex.split(c)[1] for c in readme_commands()} == {
        "run",
        "history",
        "quarantine",
        "merge",
    }
    assert [shlex.split(c)[1] for c in ci_commands()] == ["run", "merge"]


def test_bad_history_input_is_one_line_and_exit_8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_CONFIG", raising=False)
    assert main(["quarantine", "add", "t.py::x", "--until", "2000-01-01", "--reason", "r"]) == 8
    assert main(["quarantine", "add", "t.py::x", "--until", "soon", "--reason", "r"]) == 8
    assert main(["quarantine", "remove", "t.py::x"]) == 8
    assert main(["run", "--shard", "3/2"]) == 8
    for name, run_id in (("a", "itest-20270101t000000-aaaa"), ("b", "itest-20270101t000000-bbbb")):
        (tmp_path / f"{name}.json").write_text(json.dumps({"run_id": run_id}))
    assert main(["merge", "a.json", "b.json", "--report", "m.json"]) == 8
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 5 and "different runs" in lines[-1]
    assert not (tmp_path / "quarantine.toml").exists() and not (tmp_path / "m.json").exists()
