"""The ``harness`` command line: ``run`` and ``env up``.

Owns turning a user's intent into a pytest invocation (profile, suite selection, report
path, workers) and launching the sandbox in the foreground. Everything a run guarantees is
done by the pytest plugin, so ``harness run`` and plain ``pytest`` behave the same.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

SUITES = {
    "smoke": ["-m", "smoke"],
    "nightly": ["-m", "smoke or nightly"],
    "all": [],
}
PLUGINS = ["-p", "harness.plugin", "-p", "fixtures.core", "-p", "fixtures.users"]
PLUGINS += ["-p", "fixtures.events"]

DESCRIPTION = """\
env-harness: idempotent integration tests against a deployed environment.

Every run gets a namespace (itest-<utc time>-<random>-<worker>) stamped on everything it
creates; a write-ahead ledger cleans it up on pass, fail or Ctrl-C; a residue check fails the
run if anything carrying the namespace is left behind.
"""

RUN_EPILOG = """\
Targets: with HARNESS_BASE_URL set (or a profile with base_url), that environment; otherwise
the embedded sandbox is started for the run and stopped after it.
Arguments harness does not know are passed to pytest, e.g.
  harness run --suite smoke -- -x -k login
  harness run --env staging suites/auth
Exit status: 0 all passed and nothing leaked; 1 a test failed or something leaked;
2 bad configuration or unreachable environment; other codes as pytest's.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run the integration suites against an environment (default: a fresh sandbox)",
        description="Run the integration suites with cleanup, residue check and a JSON report.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    run.add_argument("--env", metavar="NAME", help="profile in environments.toml (default sandbox)")
    run.add_argument(
        "--suite", choices=sorted(SUITES), default="all", help="which tests (default: all)"
    )
    run.add_argument(
        "--report",
        metavar="PATH",
        default="harness-report.json",
        help="JSON run report (default: harness-report.json)",
    )
    run.add_argument("-n", dest="workers", metavar="N", help="parallel workers (pytest-xdist)")
    run.add_argument("--seed", type=int, metavar="N", help="replay a run's test data")
    run.add_argument(
        "--keep-on-failure",
        action="store_true",
        help="keep a failed test's resources for debugging",
    )
    env = commands.add_parser("env", help="manage the local sandbox environment")
    env_commands = env.add_subparsers(dest="env_command", metavar="ACTION")
    env_commands.add_parser(
        "up",
        help="start the sandbox in the foreground; prints `export HARNESS_…` lines first",
        add_help=False,
    )
    return parser


def _default_paths(pytest_args: list[str]) -> list[str]:
    """When no test path is given and there is no ./suites, run the installed suites."""
    if any(not a.startswith("-") and Path(a.split("::")[0]).exists() for a in pytest_args):
        return []
    if Path("suites").is_dir():
        return []
    spec = importlib.util.find_spec("suites")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [next(iter(spec.submodule_search_locations))]


def build_pytest_args(options: argparse.Namespace, passthrough: list[str]) -> list[str]:
    args = [*PLUGINS, *SUITES[options.suite], "--harness-report", options.report]
    if options.env:
        args += ["--env", options.env]
    if options.workers:
        args += ["-n", str(options.workers)]
    if options.seed is not None:
        args += ["--harness-seed", str(options.seed)]
    if options.keep_on_failure:
        args.append("--keep-on-failure")
    return args + passthrough + _default_paths(passthrough)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["env", "up"]:
        command = [sys.executable, "-m", "sandbox", *argv[2:]]
        os.execv(sys.executable, command)
    explicit: list[str] = []
    if "--" in argv:
        index = argv.index("--")
        argv, explicit = argv[:index], argv[index + 1 :]
    parser = _parser()
    options, unknown = parser.parse_known_args(argv)
    if options.command == "run":
        import pytest

        return int(pytest.main(build_pytest_args(options, unknown + explicit)))
    if options.command == "env":
        parser.parse_args(["env", "--help"])
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
