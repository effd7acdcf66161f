"""``harness history``, ``harness quarantine`` and ``harness merge``: the history's commands.

Owns their arguments and output: ``history`` lists the tests of a profile's environment with
their pass rate, flake rate, failing-since and duration trend over the last runs (``--json``
too; the shards of a run are one run); ``quarantine add|remove|list`` edits the repository's
``quarantine.toml``; ``merge`` joins a run's shards' JSON reports into one (JSON, JUnit,
Markdown, HTML), runs the whole-run residue check once and sends one alert. Every bad input
is one line and exit 8 (the callers in :mod:`harness.cli.main` map the errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.config import ConfigError
from harness.history import classify, merge, quarantine
from harness.history.records import RunRecord
from harness.history.store import DEFAULT_RUNS, HistoryConfigError, HistoryUnavailable, open_store
from harness.project import project_root
from harness.run import options, outcome


def add_commands(commands: Any, allow_override: Any) -> None:
    history = commands.add_parser(
        "history",
        help="the tests' history: pass rate, flake rate, failing since, duration trend",
        description=(
            "Read the last runs of the profile's environment from its history store and list "
            "every test: runs, pass rate, flake rate, the run it has been failing since, and "
            "its duration now against before. The shards of one run count as one run."
        ),
    )
    history.add_argument("--env", metavar="NAME", help="profile (whose store and environment)")
    history.add_argument("--history", metavar="PATH_OR_S3_URL", help="read this store instead")
    history.add_argument(
        "--runs", type=options.positive, default=DEFAULT_RUNS, metavar="N",
        help=f"how many of the last runs to read (default {DEFAULT_RUNS})",
    )  # fmt: skip
    history.add_argument("--json", action="store_true", help="print JSON")
    allow_override(history)
    quarantine_cmd = commands.add_parser(
        "quarantine",
        help="quarantine a test until a date: it runs and is reported, but does not fail runs",
        description=(
            "Edit quarantine.toml in the project root (commit it with the tests). A "
            "quarantined test still runs and is reported; its failure fails no run until the "
            "day after --until."
        ),
    )
    actions = quarantine_cmd.add_subparsers(dest="quarantine_action", metavar="ACTION")
    add = actions.add_parser("add", help="quarantine NODEID --until YYYY-MM-DD --reason TEXT")
    add.add_argument("nodeid", metavar="NODEID")
    add.add_argument("--until", required=True, metavar="YYYY-MM-DD")
    add.add_argument("--reason", required=True, metavar="TEXT")
    remove = actions.add_parser("remove", help="end a test's quarantine")
    remove.add_argument("nodeid", metavar="NODEID")
    actions.add_parser("list", help="list the quarantined tests")
    joined = commands.add_parser(
        "merge",
        help="join a run's shard reports into one (JSON, JUnit, Markdown, HTML), one residue "
        "check, one alert",
        description=(
            "Join the JSON reports of one run's shards (one HARNESS_RUN_ID): counts summed, "
            "results and failures joined, latency percentiles recomputed from every sample. "
            "Then the whole run's residue check, once (as `harness residue`), and one alert. "
            "Exit status: the worst shard's, or 6 when the residue check found a leak."
        ),
    )
    joined.add_argument("reports", nargs="+", metavar="REPORT")
    joined.add_argument("--report", required=True, metavar="PATH", help="the joined JSON report")
    joined.add_argument("--junitxml", metavar="PATH", help="JUnit XML of the joined results")
    joined.add_argument("--summary", metavar="PATH", help="Markdown summary")
    joined.add_argument("--html", metavar="PATH", help="one self-contained HTML page")
    joined.add_argument("--env", metavar="NAME", help="profile of the run's target")
    joined.add_argument("--history", metavar="PATH_OR_S3_URL", help="store for the trends")
    joined.add_argument(
        "--alert", action="append", default=[], metavar="TARGET", help="webhook=URL or cloudwatch"
    )
    joined.add_argument("--alert-on", default="failure", metavar="WHEN")
    joined.add_argument(
        "--settle", type=options.seconds, default=3.0, metavar="SECONDS",
        help="let async deletes settle (residue check)",
    )  # fmt: skip
    allow_override(joined)


def _store_and_profile(env: str | None, spec: str | None, allow_override: bool) -> Any:
    from harness.cleanup.journal import default_state_dir
    from harness.clients.aws import Aws
    from harness.config import refuse_env_overrides
    from harness.kinds.registry import load_profile

    profile = load_profile(env)
    refuse_env_overrides(profile, allow_override)
    chosen = spec or profile.history
    try:
        store = open_store(
            chosen,
            default_state_dir(),
            Aws(profile),
            Path.cwd() if spec else Path(profile.project_root or "."),
        )
    except HistoryConfigError as error:
        raise ConfigError(str(error)) from None
    return profile, store


def table(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """Per test, over ``runs`` (newest first): runs, pass rate, flake rate, failing since,
    latest verdict, durations and their trend (the mean of the 5 latest against the 5
    before)."""
    rows = []
    for nodeid, past in sorted(classify.by_test(runs).items()):
        counted = [p for p in past if p.record.counts]
        passed = sum(1 for p in counted if not p.record.failing)
        streak = []
        for entry in counted:
            if not entry.record.failing:
                break
            streak.append(entry)
        durations = [round(p.record.duration_s, 4) for p in past]
        recent, before = durations[:5], durations[5:10]
        trend: dict[str, Any] = {"recent_s": round(sum(recent) / len(recent), 4)}
        if before:
            trend["before_s"] = round(sum(before) / len(before), 4)
            if trend["before_s"] > 0:
                trend["change"] = round(trend["recent_s"] / trend["before_s"] - 1, 3)
        rows.append(
            {
                "nodeid": nodeid,
                "runs": len(past),
                "pass_rate": round(passed / len(counted), 3) if counted else None,
                "flake_rate": round(
                    sum(1 for p in past if p.record.classification == classify.FLAKY) / len(past), 3
                ),
                "failing_since": streak[-1].run_id if streak else None,
                "classification": past[0].record.classification or None,
                "durations_s": durations,
                "duration_trend": trend,
            }
        )
    rows.sort(key=lambda r: (classify.ORDER.get(str(r["classification"]), 9), r["nodeid"]))
    return rows


def history_command(args: argparse.Namespace) -> int:
    profile, store = _store_and_profile(args.env, args.history, args.allow_env_override)
    environment = profile.expected_environment
    try:
        runs = store.runs(environment, args.runs)
    except HistoryUnavailable as error:
        sys.stderr.write(f"harness: history store cannot be read: {error}\n")
        return outcome.UNREACHABLE
    rows = table(runs)
    if args.json:
        body = {
            "store": store.description,
            "environment": environment,
            "runs": len({r.run_id for r in runs}),
            "tests": rows,
        }
        print(json.dumps(body, indent=2))
        return outcome.PASSED
    print(
        f"history of [{profile.name}] ({environment}) in {store.description}: "
        f"{len({r.run_id for r in runs})} run(s), {len(rows)} test(s)"
    )
    if not rows:
        return outcome.PASSED
    width = min(70, max(len(r["nodeid"]) for r in rows))
    print(
        f"{'test':{width}}  runs  pass  flake  verdict        failing since               duration"
    )
    for row in rows:
        trend = row["duration_trend"]
        change = f" ({trend['change']:+.0%})" if "change" in trend else ""
        shown = f"{trend['recent_s']:.3f}s{change}"
        rate = "-" if row["pass_rate"] is None else f"{row['pass_rate']:.0%}"
        print(
            f"{row['nodeid'][-width:]:{width}}  {row['runs']:>4}  {rate:>4}  "
            f"{row['flake_rate']:>5.0%}  {row['classification'] or '-'!s:13}  "
            f"{row['failing_since'] or '-'!s:26}  {shown}"
        )
    return outcome.PASSED


def quarantine_command(args: argparse.Namespace) -> int:
    path = quarantine.path_in(project_root(None, os.environ))
    try:
        if args.quarantine_action == "add":
            entry = quarantine.add(path, args.nodeid, args.until, args.reason)
            print(
                f"quarantined {entry.nodeid} until {entry.until.isoformat()} in {path}: it "
                f"still runs and is reported, but fails no run until then (commit {path.name})"
            )
        elif args.quarantine_action == "remove":
            if not quarantine.remove(path, args.nodeid):
                raise ConfigError(f"{args.nodeid} is not quarantined in {path}")
            print(f"{args.nodeid}: quarantine ended ({path})")
        elif args.quarantine_action == "list":
            entries = quarantine.read(path)
            today = quarantine.today()
            for entry in entries.values():
                state = "active" if entry.active(today) else "expired"
                print(f"{entry.nodeid}  until {entry.until.isoformat()} ({state}): {entry.reason}")
            if not entries:
                print(f"no test is quarantined ({path})")
        else:
            raise ConfigError("harness quarantine: add, remove or list (see --help)")
    except quarantine.QuarantineError as error:
        raise ConfigError(str(error)) from None
    return outcome.PASSED


def merge_command(args: argparse.Namespace) -> int:
    from harness.reporting import alerts, summary
    from harness.reporting.outputs import write_atomic

    try:
        targets = [alerts.parse_target(t) for t in args.alert]
        policy = alerts.parse_policy(args.alert_on)
    except alerts.AlertConfigError as error:
        raise ConfigError(str(error)) from None
    reports = []
    for name in args.reports:
        try:
            reports.append(json.loads(Path(name).read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            raise ConfigError(f"harness merge: cannot read {name}: {error}") from None
    try:
        joined = merge.join(reports, args.reports)
    except merge.MergeError as error:
        raise ConfigError(str(error)) from None
    profile = _whole_run_residue(args, joined)
    earlier: list[dict[str, Any]] = []
    try:
        _, store = _store_and_profile(args.env, args.history, args.allow_env_override)
        earlier = [
            r.as_dict()
            for r in store.runs(profile.expected_environment, DEFAULT_RUNS, str(joined["run_id"]))
        ]
    except HistoryUnavailable as error:
        joined["warnings"].append(f"history store cannot be read ({error}): no trends")
    write_atomic(Path(args.report), joined)
    if args.junitxml:
        merge.junit(joined, Path(args.junitxml))
    if args.summary:
        summary.write(Path(args.summary), summary.render(joined))
    if args.html:
        Path(args.html).write_text(merge.html_page(joined, earlier), encoding="utf-8")
    cloudwatch = None
    if any(t.kind == "cloudwatch" for t in targets):
        from harness.clients.aws import Aws

        cloudwatch = Aws(profile, read_only=False).cloudwatch
    delivered, warnings = alerts.send(targets, policy, joined, cloudwatch)
    for what in delivered:
        print(f"harness: alert sent ({what})")
    for warning in warnings:
        sys.stderr.write(f"harness: WARNING: {warning}\n")
    tests = joined["tests"]
    print(
        f"run {joined['run_id']}: {len(args.reports)} shard(s) merged, "
        + ", ".join(f"{n} {k}" for k, n in tests.items() if n)
        + f"; {len(joined['leaked'])} leaked; exit {joined['exit_status']} ({joined['outcome']})"
    )
    return int(joined["exit_status"])


def _whole_run_residue(args: argparse.Namespace, joined: dict[str, Any]) -> Any:
    """The residue check of the whole run, once (every shard and worker): leaks join the
    report and turn a passing run into a leaked one."""
    from harness.cleanup.journal import default_state_dir, replay_run
    from harness.cleanup.residue import check
    from harness.cli.targets import liveness_of, reach, wait_until_over
    from harness.namespace import RunId
    from harness.safety.guards import Owner

    run_id = RunId.parse(str(joined["run_id"]))
    profile, kinds = reach(args.env, args.allow_env_override)
    wait_until_over(liveness_of(kinds), str(run_id), None, "merge")
    result = check(
        kinds,
        f"{run_id}-",
        Owner(run=run_id),
        recorded=replay_run(default_state_dir(), str(run_id)),
        settle=args.settle,
        remove=not profile.is_protected,
        progress=lambda m: print(f"harness: {m}", flush=True),
    )
    found = [{"kind": f.kind, **f.ids} for f in result.leaked + result.unfinished]
    joined["leaked"] += found
    joined["resources"]["leaked"] = len(joined["leaked"])
    joined["residue"] = {"checked": "whole run", "clean": result.clean, "found": len(found)}
    print(
        f"residue check of run {run_id} on [{profile.name}]: "
        + ("clean" if result.clean else f"{len(found)} item(s) left, removed")
    )
    if found and joined["exit_status"] in (outcome.PASSED, outcome.NO_TESTS):
        joined["exit_status"] = outcome.LEAKED
        joined["outcome"] = outcome.word(outcome.LEAKED)
    return profile
