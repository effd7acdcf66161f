"""Every shell snippet of README.md and docs/adapters.md says what the code takes: each
``harness …`` command line (in a ``sh``/``bash`` block or an inline code span) is read by the
real argument parser (``harness env up``'s options by the sandbox's own), each ``make`` target
is in the Makefile, each ``pip install`` names this distribution and its extras, each variable
a snippet sets is one the harness reads, with a value it takes; and the per-command exit
statuses the two documents give agree with each other and with the commands' ``--help``.
(The options a snippet passes on to pytest are parsed by pytest itself in
tests/plugin/test_docs_commands.py; the TOML snippets: test_config_docs.py; the exit tables:
test_docs_exit_codes.py.)"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from harness.cli.main import _parser, build_pytest_args
from harness.config import ENVIRONMENT_ONLY, Profile, load_profile
from harness.namespace import RunId, shard_part
from harness.run import outcome
from tests.conftest import REPO

# Under mutation testing the tree is mutmut's copy of the code, without the README and docs/
# (nothing is read from them then, not even to collect).
MUTATION_RUN = bool(os.environ.get("HARNESS_MUTATION_RUN"))
pytestmark = pytest.mark.skipif(MUTATION_RUN, reason="checks the checkout's own documents")

DOCS = ("README.md", "docs/adapters.md")
#: What a placeholder of a snippet stands for when it is parsed.
PLACEHOLDERS = {
    "$SLACK_WEBHOOK": "https://hooks.slack.example/T0/B0/x",
    "N": "2",
    "NAME": "local",
    "RUN_ID": "itest-20261127t172503-k3f9",
    "SECONDS": "300",
    "DIR": "my-project",
}
#: Variables the harness reads that are not profile fields.
RUN_VARIABLES = {"HARNESS_RUN_ID", "HARNESS_SHARD", "HARNESS_ENV", "HARNESS_CONFIG"}


@dataclass(frozen=True)
class Command:
    doc: str
    where: str  # "line N" of the document
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.doc} {self.where}: {shlex.join(self.words)}"


def _logical_lines(block: str) -> list[tuple[int, str]]:
    """(offset, line) with backslash continuations joined."""
    joined: list[tuple[int, str]] = []
    pending, start = "", 0
    for offset, line in enumerate(block.splitlines()):
        if not pending:
            start = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append((start, pending + line))
        pending = ""
    return joined


def _expand(words: list[str]) -> list[list[str]]:
    """A command line, and the one inside ``eval "$(…)"``."""
    if words[:1] == ["eval"]:
        inner = " ".join(words[1:])
        assert inner.startswith("$(") and inner.endswith(")"), words
        return [shlex.split(inner[2:-1])]
    return [[PLACEHOLDERS.get(word, word) for word in words]]


def shell_commands(doc: str) -> list[Command]:
    text = (REPO / doc).read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^[ \t]*```(?:sh|bash|shell)\n(.*?)^[ \t]*```", text, re.M | re.S):
        first = text[: match.start(1)].count("\n") + 1
        for offset, line in _logical_lines(match.group(1)):
            words = shlex.split(line, comments=True)
            for command in _expand(words) if words else []:
                found.append(Command(doc, f"line {first + offset}", tuple(command)))
    return found


def inline_harness_commands(doc: str) -> list[Command]:
    """``harness …`` code spans of the prose: ``[optional]`` parts taken, a pipe cut off;
    spans that only name a command (``harness residue``) or hold a placeholder the parser
    cannot take (``…``, ``<run id>``) left out."""
    text = (REPO / doc).read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"`(harness [^`]+)`", text):
        span = match.group(1).partition("|")[0]
        if "…" in span or "<" in span:
            continue
        line = text[: match.start()].count("\n") + 1
        words = shlex.split(span.replace("[", "").replace("]", ""))
        if len(words) > 2:
            found.append(Command(doc, f"line {line}", tuple(PLACEHOLDERS.get(w, w) for w in words)))
    return found


def all_commands() -> list[Command]:
    return [c for doc in DOCS for c in shell_commands(doc) + inline_harness_commands(doc)]


def split_assignments(words: tuple[str, ...]) -> tuple[list[tuple[str, str]], list[str]]:
    assignments, rest = [], list(words)
    while rest and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", rest[0]):
        name, _, value = rest.pop(0).partition("=")
        assignments.append((name, value))
    return assignments, rest


def harness_pytest_args(args: list[str]) -> list[str] | None:
    """What ``harness`` makes of ``args`` (its real parser; :class:`UsageError` for a bad
    line): for ``harness run``, the pytest command line it would run; else None."""
    if args[:2] == ["env", "up"]:
        from sandbox.__main__ import parse_args

        try:
            parse_args([arg for arg in args[2:] if arg != "--detach"])
        except SystemExit as stop:  # its help, or a bad option (one line, exit 2 there)
            assert stop.code == 0 and "--help" in args, f"harness {shlex.join(args)}: {stop}"
        return None
    explicit: list[str] = []
    if "--" in args:
        index = args.index("--")
        args, explicit = args[:index], args[index + 1 :]
    options, unknown = _parser().parse_known_args(args)
    assert options.command, args
    if options.command == "run":
        return build_pytest_args(options, unknown + explicit)
    assert not unknown and not explicit, f"harness {options.command} takes no {unknown}"
    return None


def pytest_command_lines() -> list[tuple[Command, list[str]]]:
    """Every pytest command line the documents give, directly or through ``harness run``."""
    lines = []
    for command in all_commands():
        _, words = split_assignments(command.words)
        if words[:1] == ["pytest"]:
            lines.append((command, words[1:]))
        elif words[:2] == ["harness", "run"]:
            args = harness_pytest_args(words[1:])
            assert args is not None
            lines.append((command, args))
    return lines


def test_the_documents_give_the_commands_this_test_reads() -> None:
    """A guard on the extraction itself: losing a block would pass every test below."""
    commands = [str(c) for c in all_commands()]
    for expected in (
        "harness recover --forget itest-20261127t172503-k3f9",  # RUN_ID, as parsed
        "harness sweep --env staging --yes --segments 4 --max-rate 500",
        "harness env up --detach",
        "HARNESS_SHARD=1 harness run --env staging suites/auth",
        "harness run --env local --suite smoke -- -x -k me",
        "pip install 'env-harness[sandbox]'",
        "harness doctor --env local",
        "harness sweep --env local --older-than 2h --yes",
    ):
        assert any(c.endswith(f": {expected}") for c in commands), (expected, commands)
    assert len(pytest_command_lines()) >= 10


@pytest.mark.parametrize("command", [] if MUTATION_RUN else all_commands(), ids=str)
def test_each_documented_command_is_taken_by_what_runs_it(command: Command) -> None:
    assignments, words = split_assignments(command.words)
    for name, value in assignments:
        check_variable(name, value)
    program, args = words[0], words[1:]
    if program == "harness":
        harness_pytest_args(args)
    elif program == "make":
        targets = re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M)
        assert set(args) <= set(targets), (args, targets)
    elif program == "pip":
        check_pip(args)
    elif program == "export":
        for name, _, value in (arg.partition("=") for arg in args):
            check_variable(name, value)
    elif program == "cd":
        text = (REPO / command.doc).read_text(encoding="utf-8")
        assert f"harness init {args[0]}" in text, f"{command}: nothing in the doc makes it"
    else:
        assert program == "pytest", f"{command}: no test reads a {program!r} command"


def check_pip(args: list[str]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert args[0] == "install", args
    for requirement in args[1:]:
        name, _, extras = requirement.partition("[")
        assert name == project["name"], requirement
        for extra in filter(None, extras.rstrip("]").split(",")):
            assert extra in project["optional-dependencies"], requirement


def check_variable(name: str, value: str) -> None:
    """``name`` is a variable the harness reads, and takes ``value``."""
    assert name.startswith("HARNESS_"), name
    field = name.removeprefix("HARNESS_").lower()
    if name == "HARNESS_RUN_ID":
        RunId.parse(value)
    elif name == "HARNESS_SHARD":
        shard_part(value)
    elif name in ENVIRONMENT_ONLY.values() or name in RUN_VARIABLES:
        pass  # a secret (a placeholder in the doc) or a name
    else:
        assert field in {f.name for f in fields(Profile)}, f"the harness reads no {name}"
        where = Path("/nonexistent/environments.toml")
        load_profile("sandbox", where, environ={name: value}, declared={})


def test_a_bad_line_is_refused_by_the_same_checks() -> None:
    """The checks above can fail: each of these is a line a document once could have had."""
    from harness.cli.main import UsageError

    for bad in (["sweep", "--older", "1x"], ["run", "-n", "0"], ["residue"]):
        with pytest.raises(UsageError):
            harness_pytest_args(bad)
    with pytest.raises(AssertionError, match="harness recover takes no"):
        harness_pytest_args(["recover", "--forgett"])
    with pytest.raises(AssertionError, match="harness env up --bus rabbitmq: 2"):
        harness_pytest_args(["env", "up", "--bus", "rabbitmq"])
    with pytest.raises(ValueError):
        check_variable("HARNESS_RUN_ID", "itest-yesterday")
    with pytest.raises(AssertionError, match="reads no HARNESS_BASEURL"):
        check_variable("HARNESS_BASEURL", "http://x")
    with pytest.raises(AssertionError):
        check_pip(["install", "env-harness[kafak]"])


# -- per-command exit statuses -----------------------------------------------------------------

#: Where each document states a command's exit statuses, and the statuses it gives.
STATEMENTS = {
    ("README.md", "doctor"): r"`harness doctor`: (.*?)\. `harness residue`",
    ("README.md", "residue"): r"`harness residue` and\s+`harness recover`: (.*?)\. Every",
    ("README.md", "recover"): r"`harness residue` and\s+`harness recover`: (.*?)\. Every",
    ("docs/adapters.md", "doctor"): r"`harness doctor` exits (.*?)\(the exit codes",
    ("docs/adapters.md", "recover"): r"deletes what they recorded, .*?\n\s*Exit (.*?)\. Items",
    ("docs/adapters.md", "residue"): r"`harness residue RUN_ID --env local`\*\* (.*?)\.\n",
}


def documented_codes(doc: str, command: str) -> set[int]:
    text = (REPO / doc).read_text(encoding="utf-8")
    match = re.search(STATEMENTS[(doc, command)], text, re.S)
    assert match, (doc, command)
    sentence = " ".join(match.group(1).split())
    return {int(n) for n in re.findall(r"\b(\d+)\b", sentence)}


def help_codes(command: str) -> set[int]:
    import argparse

    (action,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    text = " ".join((action.choices[command].description or "").split())
    return {int(n) for n in re.findall(r"\b(?:[Ee]xit|,|;) ?(\d+)\b", text)}


@pytest.mark.parametrize("command", ["doctor", "recover", "residue"])
def test_each_commands_exit_statuses_agree_across_documents_and_help(command: str) -> None:
    readme = documented_codes("README.md", command)
    guide = documented_codes("docs/adapters.md", command)
    assert readme == guide, (command, readme, guide)
    assert readme <= set(outcome.WORDS), readme
    assert help_codes(command) | {outcome.PASSED} == readme, (command, help_codes(command))


def test_the_guides_declared_kind_table_names_every_field_a_declaration_takes(
    tmp_path: Path,
) -> None:
    """Each key of a ``[profile.kinds.NAME]`` table, as the profile loader lists them when
    it refuses an unknown one (``run_index``/``run_attribute`` were once only there)."""
    from harness.config import ConfigError

    text = (REPO / "docs" / "adapters.md").read_text(encoding="utf-8")
    table = text.split("**Declared kinds**", 1)[1].split("\n\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", table, re.M))
    documented_keys = {key for pair in documented for key in pair if key}
    profiles = tmp_path / "environments.toml"
    profiles.write_text('[local]\nbase_url = "http://x"\n[local.kinds.n]\nbogus = 1\n')
    with pytest.raises(ConfigError) as refused:
        load_profile("local", profiles, environ={}, declared={})
    known = set(str(refused.value).rpartition("known: ")[2].split(", "))
    assert documented_keys == known, (documented_keys, known)
