"""Mutation testing of the safety layers: ``make mutate`` (every listed module) and the CI
smoke in ``make test`` (``--smoke``: the ownership gate alone, against its fast tests).

mutmut (configured in pyproject.toml, ``[tool.mutmut]``) copies ``harness/`` to ``mutants/``,
mutates the listed modules function by function, and runs the fast tier (tests/unit) once per
mutant — only the tests that reach the mutated function, in a forked child. This script then
reads mutmut's per-file results and prints, per module::

    mutation_score: harness/safety/guards.py 61/61
    ...
    mutation_score: total 0.93
    mutation_equivalent: harness/namespace.py:57 <reason>
    mutation_survivor: harness/config.py:142 <the mutated line, before -> after>

A mutant counts as killed when a test failed (or it hung: a timeout). Survivors and mutants
no test reached count against the score. A mutant that cannot be killed because it changes
nothing observable is marked *equivalent* in the code, mutmut's way: the statement between
``# pragma: no mutate start (equivalent: <reason>)`` and ``# pragma: no mutate end`` comment
lines produces no mutants; each is listed (the line after the start) and counted apart.
Exit status 1 when a module scores under ``--min`` (default 0.90).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE_MODULES = ["harness/safety/guards.py"]
#: The gate's own tests and the delete paths that call it; no hypothesis suites (fast).
SMOKE_TESTS = [
    "tests/unit/test_guards.py",
    "tests/unit/test_create_gate.py",
    "tests/unit/test_sweeper_plan.py",
    "tests/unit/test_residue.py",
    "tests/unit/test_recovery_and_lease.py",
]
KILLED = {1, 3, 36, 37, -24, 24, 152, 255}  # a failing test, or a timeout (it hung)
PRAGMA = "# pragma: no mutate"

# mutmut reads its configuration from pyproject.toml; the smoke narrows it before running.
_BOOT = """
import json, signal, sys
# The interrupt relay's kick (SIGUSR2) may land just after a unit test gave the signals back
# (harness/run/interrupts.py: the relay thread can read a stop before it reads its end); its
# default action would then kill mutmut itself, so the kick is ignored in mutmut's processes.
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
from mutmut.configuration import config
overrides = json.loads(sys.argv[1])
cfg = config()
for name, value in overrides.items():
    setattr(cfg, name, value)
from mutmut.__main__ import cli
cli.main(["run", "--max-children", sys.argv[2]], prog_name="mutmut")
"""


def listed_modules() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(data["tool"]["mutmut"]["only_mutate"])


def run_mutmut(overrides: dict[str, object], children: int, log: Path) -> int:
    """mutmut, with one PostgreSQL server for all its mutants where the machine has one (the
    SQL kind's fast tests: ``HARNESS_TEST_POSTGRES_URL``, tests/postgres.py), instead of one
    started by every mutant's test session."""
    command = [sys.executable, "-c", _BOOT, json.dumps(overrides), str(children)]
    environ = {**os.environ, "HARNESS_MUTATION_RUN": "1"}
    sys.path.insert(0, str(ROOT))
    from sandbox.postgres import PostgresServer, find_bindir

    server = (
        PostgresServer() if find_bindir() and "HARNESS_TEST_POSTGRES_URL" not in environ else None
    )
    try:
        if server is not None:
            server.start()
            environ["HARNESS_TEST_POSTGRES_URL"] = server.url()
        with log.open("w", encoding="utf-8") as out:
            return subprocess.call(
                command, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT
            )
    finally:
        if server is not None:
            server.stop()


def function_lines(source: str) -> dict[str, int]:
    """``x_name`` / ``xǁClassǁname`` (mutmut's mangling) -> the line its ``def`` is on."""
    lines: dict[str, int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines[f"x_{node.name}"] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines[f"x\u01c1{node.name}\u01c1{item.name}"] = item.lineno
    return lines


def locate(module: str, name: str, source: str) -> tuple[int, str]:
    """(line in the original file, ``before -> after``) of one mutant, from mutmut's diff."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    mangled = name.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    start = function_lines(source).get(mangled, 0)
    diff = get_diff_for_mutant(name, path=ROOT / "mutants" / module).splitlines()
    offset, before, after, line = 0, "", "", 0
    for text in diff:
        hunk = re.match(r"^@@ -(\d+)", text)
        if hunk:
            offset = int(hunk[1]) - 1
            continue
        if text.startswith(("---", "+++")):
            continue
        if text.startswith("-") and not before:
            before, line = text[1:].strip(), offset + 1
        elif text.startswith("+") and not after:
            after = text[1:].strip()
            line = line or offset + 1
        if not text.startswith("+"):
            offset += 1
    return start + max(line - 1, 0), f"{before} -> {after}"[:160]


def equivalents(module: str) -> list[tuple[int, str]]:
    marked = []
    lines = (ROOT / module).read_text(encoding="utf-8").splitlines()
    for number, text in enumerate(lines, 1):
        if PRAGMA not in text or text.rstrip().endswith(f"{PRAGMA} end"):
            continue
        reason = text.split(PRAGMA, 1)[1].strip()
        starts = reason.startswith("start")  # a start/end pair: the statement on the next line
        reason = reason.removeprefix("start").strip(" :-—()")
        previous = lines[number - 2].strip() if number > 1 else ""
        if not reason and previous.startswith("#"):  # the reason on the line above
            reason = previous.lstrip("# ")
        marked.append((number + 1 if starts else number, reason or "(no reason given)"))
    return marked


def report(modules: list[str], minimum: float) -> int:
    killed_total = total_all = 0
    failing: list[str] = []
    survivors: list[str] = []
    marked: list[str] = []
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)  # mutmut's helpers read mutants/ and pyproject.toml from here
    from mutmut.stats import status_by_exit_code

    for module in modules:
        meta = ROOT / "mutants" / (module + ".meta")
        codes = (
            json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
            if meta.exists()
            else {}
        )
        killed = sum(code in KILLED for code in codes.values())
        total = len(codes)
        killed_total += killed
        total_all += total
        print(f"mutation_score: {module} {killed}/{total}")
        if total and killed / total < minimum:
            failing.append(f"{module} {killed / total:.2f}")
        source = (ROOT / module).read_text(encoding="utf-8")
        for name, code in sorted(codes.items()):
            if code in KILLED:
                continue
            line, change = locate(module, name, source)
            status = status_by_exit_code[code]
            status = "not reached by any test" if status == "no tests" else status
            survivors.append(f"mutation_survivor: {module}:{line} [{status}] {change}")
        marked += [f"mutation_equivalent: {module}:{n} {why}" for n, why in equivalents(module)]
    score = killed_total / total_all if total_all else 0.0
    print(f"mutation_score: total {score:.3f} ({killed_total}/{total_all})")
    print(f"mutation_equivalents: {len(marked)} (lines marked '{PRAGMA}', with the reason)")
    for entry in marked + survivors:
        print(entry)
    if failing:
        print(f"mutation score under {minimum:.2f}: {', '.join(failing)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the guard module alone (CI)")
    parser.add_argument("--min", type=float, default=0.90, help="lowest passing module score")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--keep", action="store_true", help="reuse mutants/ and its results (iterating on tests)"
    )
    parser.add_argument("--report-only", action="store_true", help="print the last results")
    parser.add_argument(
        "--module", action="append", default=[], help="only this listed module (repeatable)"
    )
    args = parser.parse_args(argv)
    modules = SMOKE_MODULES if args.smoke else (args.module or listed_modules())
    if not args.report_only:
        overrides: dict[str, object] = {}
        if args.module:
            overrides["only_mutate"] = args.module
        if args.smoke:
            overrides = {
                "only_mutate": SMOKE_MODULES,
                "pytest_add_cli_args_test_selection": SMOKE_TESTS,
            }
        if not args.keep:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        log = ROOT / "mutants.log"
        started = time.monotonic()
        code = run_mutmut(overrides, args.jobs, log)
        print(f"mutmut ran {time.monotonic() - started:.0f}s (log: {log.name})")
        if code != 0:
            print(log.read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr)
            print(f"mutmut failed (exit {code}); its log is {log}", file=sys.stderr)
            return 2
    return report(modules, args.min)


if __name__ == "__main__":
    sys.exit(main())
