"""``make bench``: run every benchmark, print its figures, write docs/performance.md.

Each script runs as its own subprocess (its own sandbox, stopped when it ends) and prints
``name: value`` lines; this collects them in one run, prints them, and writes the table —
figure, value, target, met? — with the machine it ran on and the commands that reproduce
it. Usage: ``.venv/bin/python bench/run_all.py [--quick] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "performance.md"


@dataclass(frozen=True)
class Target:
    text: str
    met: Callable[[float], bool]


TARGETS = {
    "overhead_ratio": Target("≤ 1.05", lambda v: v <= 1.05),
    "scaling_n8_vs_n1": Target("≥ 6", lambda v: v >= 6),
    "scaling_n8_startup_share": Target("< 0.10", lambda v: v < 0.10),
    "sweep_batch_vs_single": Target("≥ 10", lambda v: v >= 10),
    "smoke_seconds": Target("≤ 5", lambda v: v <= 5),
    "peak_rss_mb": Target("(reported)", lambda v: True),
    "health_keepalive_req_per_s": Target("≥ 800", lambda v: v >= 800),
    "get_user_authenticated_keepalive_req_per_s": Target("≥ 200", lambda v: v >= 200),
    "health_keepalive_over_new_connection": Target("> 1", lambda v: v > 1),
    "key_op_latency_100k_vs_100": Target("≤ 1.5", lambda v: v <= 1.5),
    "kafka_sandbox_start_seconds": Target("(reported)", lambda v: True),
    "kafka_publish_to_expect_event_p95_ms": Target("(reported)", lambda v: True),
    "kafka_broker_rss_mb": Target("(reported)", lambda v: True),
    "residue_big_vs_empty": Target("≤ 1.2", lambda v: v <= 1.2),
    "smoke_big_vs_empty": Target("≤ 1.2", lambda v: v <= 1.2),
    "delete_user_big_vs_empty": Target("≤ 1.5", lambda v: v <= 1.5),
    "sweep_budget_ratio": Target("0.9 to 1.1", lambda v: 0.9 <= v <= 1.1),
    "sweep_segments_speedup": Target("> 1 (reported)", lambda v: v > 1),
    "client_cpu_ms_per_test": Target("≤ 0.5", lambda v: v <= 0.5),
    "client_cpu_fixed_seconds": Target("≤ 0.15", lambda v: v <= 0.15),
    "trace_header_cpu_ms": Target("≤ 0.02", lambda v: v <= 0.02),
    "service_log_lookup_seconds": Target("(reported)", lambda v: True),
    "history_overhead_ms_per_test": Target("≤ 0.2", lambda v: v <= 0.2),
    "history_read_100_runs_ms_sqlite": Target("(reported)", lambda v: True),
    "history_read_100_runs_ms_s3": Target("(reported)", lambda v: True),
    "shard_spread_with_history": Target("≤ 1.1", lambda v: v <= 1.1),
    "residue_cognito_big_vs_empty": Target("≤ 1.2", lambda v: v <= 1.2),
    "residue_s3_big_vs_empty": Target("≤ 1.2", lambda v: v <= 1.2),
    "residue_sql_big_vs_empty": Target("≤ 1.2", lambda v: v <= 1.2),
}

#: (module, full arguments, --quick arguments)
SCRIPTS: list[tuple[str, list[str], list[str]]] = [
    ("bench.overhead", [], ["--scenarios", "20", "--rounds", "2"]),
    ("bench.scaling", [], ["--tests", "48", "--health", "2"]),
    ("bench.sweep", [], ["--items", "1000"]),
    ("bench.smoke", [], ["--runs", "1"]),
    ("bench.sandbox_throughput", [], ["--requests", "300"]),
    ("bench.key_ops", [], ["--big", "10000", "--rounds", "3"]),
    ("bench.kafka", [], ["--starts", "1", "--events", "20"]),
    ("bench.history", [], ["--rounds", "2"]),
    ("bench.trace", [], ["--headers", "20000", "--requests", "100", "--failures", "2"]),
    (
        "bench.bigtables",
        [],
        [
            "--items",
            "5000",
            "--leftovers",
            "1000",
            "--users",
            "2",
            "--smoke-runs",
            "1",
            "--segment-items",
            "2000",
        ],
    ),
    ("bench.stores", [], ["--items", "2000", "--leftovers", "200", "--rounds", "3"]),
]
#: The cost model (docs/cost-model.md): its ``{figure_name}`` placeholders (a name with an
#: underscore; ``{uid}`` stays as written) are filled with this run's figures (those of the
#: table, when ``--only`` kept them from the last full run).
COST_MODEL = REPO / "docs" / "cost-model.md"
ROW = re.compile(r"^\| `([a-z0-9_]+)` \| (.*?) \| .*? \| .*? \| (`bench/[a-z_]+\.py`) \|$")


def run_script(module: str, args: list[str]) -> tuple[list[tuple[str, str]], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        timeout=3600,
        check=False,
    )
    seconds = time.perf_counter() - started
    figures = []
    for line in done.stdout.splitlines():
        name, sep, value = line.partition(": ")
        if sep and name and " " not in name:
            figures.append((name, value.strip()))
    if done.returncode != 0:
        figures.append((f"{module.split('.')[-1]}_error", f"exit {done.returncode}"))
    return figures, seconds


def command_line(module: str, args: list[str]) -> str:
    return " ".join([".venv/bin/python", "-m", module, *args])


def render(
    figures: list[tuple[str, str, str]], commands: list[str], quick: bool, loads: list[float]
) -> str:
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`bench/run_all.py`); every figure below comes from one run of it",
        "on the machine named at the end. Ratios are measured side by side in the same run, so",
        "they carry across machines better than the absolute times next to them.",
        "",
    ]
    if quick:
        lines += ["**Quick run (`--quick`): small sizes, not the published figures.**", ""]
    lines += ["| figure | value | target | met? | from |", "|---|---|---|---|---|"]
    for name, value, source in figures:
        target = TARGETS.get(name)
        met = ""
        if target is not None:
            try:
                met = "yes" if target.met(float(value)) else "**no**"
            except ValueError:
                met = "?"
        lines.append(f"| `{name}` | {value} | {target.text if target else ''} | {met} | {source} |")
    lines += [
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench                      # all of them, and this file",
        *commands,
        "```",
        "",
        "## Machine",
        "",
        f"- cores: {os.cpu_count()} (`nproc`)",
        f"- python: {platform.python_version()} ({platform.python_implementation()})",
        f"- platform: {platform.platform()}",
        f"- 1-minute load average at the start of each script: "
        f"{', '.join(f'{v:.1f}' for v in loads)} (other work on the machine skews wall times)",
        f"- written: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
    ]
    if COST_MODEL.exists():
        values = {name: value for name, value, _ in figures}
        template = COST_MODEL.read_text(encoding="utf-8").rstrip()
        lines += [
            re.sub(r"\{([a-z0-9]+_[a-z0-9_]+)\}", lambda m: values.get(m[1], "n/a"), template),
            "",
        ]
    notes = REPO / "docs" / "performance-notes.md"
    if notes.exists():
        lines += [notes.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--only", nargs="*", metavar="NAME", help="e.g. overhead sweep")
    parser.add_argument("--no-write", action="store_true", help="do not write the doc")
    options = parser.parse_args()
    collected: list[tuple[str, str, str]] = []
    loads: list[float] = []
    for module, full, quick in SCRIPTS:
        short = module.split(".")[-1]
        if options.only and short not in options.only:
            continue
        args = quick if options.quick else full
        loads.append(os.getloadavg()[0])
        sys.stderr.write(f"bench: running {command_line(module, args)}\n")
        figures, seconds = run_script(module, args)
        sys.stderr.write(f"bench: {short} took {seconds:.0f}s\n")
        for name, value in figures:
            print(f"{name}: {value}", flush=True)
            collected.append((name, value, f"`bench/{short}.py`"))
    if options.only and DOC.exists():
        # Rows of the scripts not run this time stay as the last run wrote them.
        ran = {f"`bench/{module.split('.')[-1]}.py`" for module, _, _ in SCRIPTS}
        ran = {r for r in ran if r.strip("`").split("/")[-1][:-3] in options.only}
        kept = [
            (m[1], m[2], m[3])
            for line in DOC.read_text(encoding="utf-8").splitlines()
            if (m := ROW.match(line)) and m[3] not in ran
        ]
        collected = kept + collected
    # Every script's command, also those --only skipped: their rows stay in the table.
    commands = [command_line(m, quick if options.quick else full) for m, full, quick in SCRIPTS]
    if not options.no_write:
        DOC.write_text(render(collected, commands, options.quick, loads), encoding="utf-8")
        sys.stderr.write(f"bench: wrote {DOC.relative_to(REPO)}\n")
    missed = [
        name for name, value, _ in collected if name in TARGETS and not _met(TARGETS[name], value)
    ]
    if missed:
        sys.stderr.write(f"bench: targets missed: {', '.join(missed)}\n")
    return 0


def _met(target: Target, value: str) -> bool:
    try:
        return target.met(float(value))
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
