"""The command line of the fault simulation: ``python -m tests.simulate`` (``make simulate``).

``--bus kafka`` runs against a Kafka sandbox (a real broker and schema registry) the phases
where the bus matters (:data:`tests.simulate.matrix.BUS_PHASES`) and the multi-run scenarios;
``--quick`` runs the bus's bounded slice (:data:`tests.simulate.matrix.QUICKS`),
``--only ID[@SEED]`` (repeatable) replays chosen scenarios, ``--list`` prints the matrix,
``--seed N`` changes the base seed every scenario's own seed is derived from. Prints one line
per scenario as it finishes, then the table, the count per invariant and every violation with
its evidence.
Exit status: 0 no violation, 1 some, 2 a bad command line (or ``--bus kafka`` without java
or mvn).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from tests.simulate import table
from tests.simulate.matrix import BUSES, QUICKS, AnyScenario, full_matrix, select
from tests.simulate.runner import Outcome, Simulation


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulate",
        description="Fault simulation of the run lifecycle: real `harness run` processes, one "
        "fault at one phase each, every invariant checked after every scenario.",
    )
    parser.add_argument("--quick", action="store_true", help="the bounded slice only")
    parser.add_argument(
        "--only", action="append", default=[], metavar="ID[@SEED]", help="run these scenarios"
    )
    parser.add_argument("--seed", type=int, default=1, help="base seed (default 1)")
    parser.add_argument("--list", action="store_true", help="print the scenarios and exit")
    parser.add_argument(
        "--bus",
        choices=BUSES,
        default="sns",
        help="the sandbox's bus (default sns; kafka: a real broker, the phases where the bus "
        "matters, needs java and mvn)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", metavar="PATH", help="also write the verdicts as JSON")
    return parser.parse_args(argv)


def scenarios(options: argparse.Namespace) -> list[AnyScenario]:
    if options.only:
        return select(options.only, options.seed, options.bus)
    if options.quick:
        return select(list(QUICKS[options.bus]), options.seed, options.bus)
    return full_matrix(options.seed, options.bus)


def write_json(path: Path, outcomes: list[Outcome], bus: str) -> None:
    body = [
        {
            "id": o.scenario.id,
            "bus": bus,
            "seed": o.scenario.seed,
            "reached": o.reached,
            "seconds": o.seconds,
            "commands": [{"name": c.name, "status": c.status} for c in o.commands],
            "violations": [{"invariant": v.invariant, "detail": v.detail} for v in o.violations],
            "notes": o.notes,
        }
        for o in outcomes
    ]
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def progress(message: str) -> None:
    print(f"simulate: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse(sys.argv[1:] if argv is None else argv)
        chosen = scenarios(options)
    except ValueError as error:
        print(f"simulate: {error}", file=sys.stderr)
        return 2
    missing = [
        tool for tool in ("java", "mvn") if options.bus == "kafka" and not shutil.which(tool)
    ]
    if missing and not options.list:
        print(
            f"simulate: --bus kafka needs {' and '.join(missing)}: install Java 17 and Maven "
            "(e.g. `apt-get install openjdk-17-jre-headless maven`)",
            file=sys.stderr,
        )
        return 2
    if options.list:
        for scenario in chosen:
            print(scenario.replay)
        print(f"{len(chosen)} scenario(s)")
        return 0
    started = time.monotonic()
    outcomes: list[Outcome] = []
    print(
        f"simulate: {len(chosen)} scenario(s), bus {options.bus}, base seed {options.seed}",
        flush=True,
    )
    with Simulation(keep=options.keep, progress=progress, bus=options.bus) as sim:
        for index, scenario in enumerate(chosen, 1):
            outcome = sim.run(scenario)
            outcomes.append(outcome)
            print(f"[{index}/{len(chosen)}] {table.render_line(outcome)}", flush=True)
    seconds = time.monotonic() - started
    print()
    print(table.render_table(outcomes, options.bus))
    print()
    print(table.render_summary(outcomes, seconds))
    print()
    print(table.render_violations(outcomes))
    if options.json:
        write_json(Path(options.json), outcomes, options.bus)
    return 1 if any(not o.ok for o in outcomes) else 0
