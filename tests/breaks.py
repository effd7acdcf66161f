"""The second line of defence, proven: each deliberate break of safety code (issue 15's audit)
is made, one at a time, in a scratch copy of the repository, and the fast test named for it
must then fail. ``python tests/breaks.py`` prints one line per break: CAUGHT or MISSED.

Each break is a small text edit (``old`` -> ``new``, ``old`` must occur exactly once) of the
kind a careless refactor makes: a dropped check, a swapped condition, a removed line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY = ["harness", "fixtures", "sandbox", "tests", "environments.toml", "pyproject.toml"]


@dataclass(frozen=True)
class Break:
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


U = "tests/unit/"
BREAKS = [
    Break(
        "guard: the run check dropped (another run's item passes)",
        "harness/safety/guards.py",
        "if self.run is not None and ns.run != self.run:",
        "if False:",
        (U + "test_guards.py::test_owner_of_a_run_refuses_another_runs_namespace_naming_both",),
    ),
    Break(
        "single delete path: the gate skipped (ledger cleanup, recovery, residue)",
        "harness/safety/guards.py",
        "        check(kind, resource.ids, owner)\n",
        "",
        (U + "test_guards.py::test_guarded_deleter_refuses_before_the_kind_is_called",),
    ),
    Break(
        "batch delete path: the gate skipped (sweeper)",
        "harness/safety/guards.py",
        "        check(kind, item.ids, owner)\n",
        "",
        (U + "test_guards.py::test_one_refusal_stops_the_whole_batch_for_a_run_owner",),
    ),
    Break(
        "recovery path: deletes without the run's gate",
        "harness/cleanup/recovery.py",
        "ledger = Ledger(journal, delete)",
        "ledger = Ledger(journal, lambda r: kinds[r.kind].delete(r.ids))",
        (
            U + "test_recovery_and_lease.py::"
            "test_recovery_path_refuses_another_runs_and_foreign_items",
        ),
    ),
    Break(
        "residue path: removes leaks without the gate",
        "harness/cleanup/residue.py",
        "    _remove(delete, leaks + result.unfinished, result.cleaned, result)\n",
        "    delete = lambda r: kinds[r.kind].delete(r.ids)  # noqa: E731\n"
        "    _remove(delete, leaks + result.unfinished, result.cleaned, result)\n",
        (U + "test_residue.py::test_the_residue_removal_goes_through_the_gate",),
    ),
    Break(
        "sweeper path: deletes a found batch without the gate",
        "harness/cleanup/sweeper.py",
        "deleted.update(guarded_batch_delete(kinds, owner, by_kind[name]))",
        "deleted[name] += kinds[name].delete_many([i.ids for i in by_kind[name]])",
        (
            U + "test_sweeper_plan.py::"
            "test_the_sweeper_path_refuses_a_foreign_item_even_if_a_kind_finds_it",
        ),
    ),
    Break(
        "store: the declared kind's delete is no longer conditional on the marker",
        "harness/kinds/declared.py",
        "        if self._get(key) is not None:\n",
        "        if False:\n",
        (
            U + "test_stores_conditional_delete.py::"
            "test_a_conditional_delete_refuses_an_item_that_now_carries_another_marker",
        ),
    ),
    Break(
        "store: the user kind deletes a uid that now holds another email",
        "fixtures/kinds.py",
        '            raise OwnershipError(f"uid {uid} now holds '
        "{item.get('Email')!r}, not {email!r}\")",
        "            return False",
        (
            U + "test_stores_conditional_delete.py::"
            "test_user_delete_refuses_when_the_uid_now_holds_another_email",
        ),
    ),
    Break(
        "identity: redirects no longer followed",
        "harness/safety/preflight.py",
        "response = http.get(url, timeout=(3.05, 10), allow_redirects=True)",
        "response = http.get(url, timeout=(3.05, 10), allow_redirects=False)",
        (U + "test_preflight.py::test_a_redirect_on_the_same_host_is_followed",),
    ),
    Break(
        "identity: the final host no longer checked",
        "harness/safety/preflight.py",
        "    if final_host != urlparse(profile.base_url).netloc:",
        "    if final_host is None:",
        (
            U + "test_preflight.py::"
            "test_a_redirect_to_another_host_is_refused_even_if_it_claims_the_name",
        ),
    ),
    Break(
        "identity: the AWS account check passes any account",
        "harness/safety/preflight.py",
        "    if str(account) != str(profile.aws_account_id):",
        "    if not account:",
        (U + "test_preflight.py::test_the_account_check_refuses_other_credentials",),
    ),
    Break(
        "protected target: dead runs replayed anyway",
        "harness/run/lifecycle.py",
        '    if not profile.is_protected:\n        faultpoints.reach("recovery")',
        '    if True:\n        faultpoints.reach("recovery")',
        (U + "test_run_start.py::test_a_protected_target_gets_no_lease_and_no_recovery",),
    ),
    Break(
        "redaction: a short secret in a request body no longer masked by its key",
        "harness/safety/redact.py",
        "                k: (MASK if isinstance(k, str) and self.is_sensitive(k) "
        "else self.data(v))",
        "                k: (MASK if isinstance(v, str) and len(v) >= 8 and self.is_sensitive(k)"
        " else self.data(v))",
        (
            U + "test_http_recording.py::"
            "test_short_secrets_in_request_bodies_are_masked_by_the_client",
        ),
    ),
    Break(
        "redaction: the client stops learning secrets it is handed (unregistered secrets)",
        "harness/clients/http.py",
        "        redactor.learn(response_data)\n",
        "",
        (
            U + "test_http_recording.py::"
            "test_an_unregistered_secret_from_a_response_is_masked_wherever_it_turns_up",
        ),
    ),
    Break(
        "liveness: a lock held elsewhere no longer keeps a folder alive",
        "harness/cleanup/liveness.py",
        "            if fd is None:\n                break\n",
        "            if fd is None:\n                continue\n",
        (U + "test_liveness.py::test_any_held_lock_of_a_folder_keeps_it_alive",),
    ),
    Break(
        "precedence: $HARNESS_ENV beats the --env option",
        "harness/config.py",
        '    if name:\n        name_source = "option"\n    elif environ.get',
        '    if name and not environ.get(f"{ENV_PREFIX}ENV"):\n'
        '        name_source = "option"\n    elif environ.get',
        (
            U + "test_run_start.py::"
            "test_option_beats_environment_beats_file_through_the_real_command_line",
        ),
    ),
    Break(
        "--seed: a test's data no longer derives from the run seed",
        "harness/run/session.py",
        'digest = hashlib.sha256(f"{self.seed}:{nodeid}{again}".encode()).digest()',
        'digest = hashlib.sha256(f"{nodeid}".encode()).digest()',
        (U + "test_run_start.py::test_seed_replays_the_same_test_data",),
    ),
    Break(
        "the X-Harness-Run header dropped",
        "harness/clients/http.py",
        '        self.headers["X-Harness-Run"] = run_id\n',
        "",
        (U + "test_http_recording.py::test_every_request_carries_the_run_header_and_user_agent",),
    ),
    Break(
        "protection: a variable may loosen a protected profile (HARNESS_PROTECTED=false)",
        "harness/config.py",
        '            if protects:\n                how = (f"${variable}", f"Unset {variable}")',
        '            if False:\n                how = (f"${variable}", f"Unset {variable}")',
        (
            U + "test_config_protection.py::"
            "test_a_variable_cannot_unprotect_a_profile_the_file_protects",
        ),
    ),
    Break(
        "discovery: the profiles file looked for in the current folder only, not above",
        "harness/project.py",
        "    for candidate in (folder, *folder.parents):",
        "    for candidate in (folder,):",
        (U + "test_config_discovery.py::test_the_nearest_file_is_found_in_the_folder_or_above",),
    ),
    Break(
        "interrupts: the first stop no longer recorded when it arrives (issue 20, item 1)",
        "harness/run/interrupts.py",
        "        self.requested, self.signal_name = True, name\n",
        "        self.signal_name = name\n",
        (
            U + "test_interrupts_and_streams.py::"
            "test_the_first_stop_is_recorded_at_once_and_ends_the_tests",
        ),
    ),
    Break(
        "interrupts: a controller's pass-on abandons a worker's cleanup",
        "harness/run/interrupts.py",
        "            if signum == FORWARDED or self.abandoned:",
        "            if self.abandoned:",
        (U + "test_interrupts_and_streams.py::test_a_forwarded_stop_never_abandons",),
    ),
    Break(
        "reports: an earlier run's report left at the path (issue 25, item 4)",
        "harness/reporting/outputs.py",
        "            write_placeholder(path, run_id)\n",
        "            pass\n",
        (
            U + "test_interrupts_and_streams.py::"
            "test_outputs_are_checked_before_the_run_and_stale_ones_cleared",
        ),
    ),
    Break(
        "residue: a recorded item still there reported as a leak (issue 20, item 7)",
        "harness/cleanup/residue.py",
        "    result.unfinished = [f for f in left if _key(f) in recorded_present]\n"
        "    result.leaked = [f for f in left if _key(f) not in recorded_present]\n",
        "    result.leaked = left\n",
        (
            U + "test_residue.py::"
            "test_a_recorded_resource_still_present_is_unfinished_cleanup_never_a_leak",
        ),
    ),
    Break(
        "liveness: a fresh lease no longer keeps a lockless folder alive (issue 25, item 3)",
        "harness/cleanup/liveness.py",
        "        elif lease is not None:\n            alive = self._lease_alive(lease)",
        "        elif False:\n            alive = self._lease_alive(lease)",
        (
            U + "test_liveness.py::"
            "test_a_fresh_lease_keeps_a_lockless_folder_alive_and_names_its_holder",
        ),
    ),
    Break(
        "liveness: recover/residue RUN_ID blind to a live shard (issue 25, items 2 and 4)",
        "harness/cleanup/liveness.py",
        "            verdict = self.verdict(folder)\n            if verdict.alive:",
        "            verdict = self.verdict(folder)\n            if False:",
        (U + "test_liveness.py::test_alive_parts_name_every_live_shard_here_and_elsewhere",),
    ),
]


def pytest(scratch: Path, tests: list[str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    environ["PYTHONPATH"] = str(scratch)
    command = [sys.executable, "-m", "pytest", "-c", "tests/pytest.ini", "-q", "-x"]
    command += ["-p", "no:cacheprovider", "-p", "no:faker", *tests]
    return subprocess.run(
        command, cwd=scratch, env=environ, capture_output=True, text=True, timeout=600
    )


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"


def caught(scratch: Path, item: Break) -> tuple[bool, str]:
    """Exit 1 (a test failed) under the break; any other outcome (passed, or could not even
    collect: exit 2/4) is not a catch."""
    path = scratch / item.path
    original = path.read_text(encoding="utf-8")
    if original.count(item.old) != 1:
        return False, f"the code to break moved: {item.old!r} occurs {original.count(item.old)}x"
    path.write_text(original.replace(item.old, item.new), encoding="utf-8")
    try:
        done = pytest(scratch, list(item.tests))
    finally:
        path.write_text(original, encoding="utf-8")
    return done.returncode == 1, last_line(done)


def main() -> int:
    missed = 0
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        for name in COPY:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(
                    source, scratch / name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(source, scratch / name)
        # Unbroken, every named test passes in the copy: a catch below is the break's doing.
        baseline = pytest(scratch, sorted({t for item in BREAKS for t in item.tests}))
        if baseline.returncode != 0:
            print(f"the named tests fail without any break: {last_line(baseline)}")
            return 2
        for number, item in enumerate(BREAKS, 1):
            ok, detail = caught(scratch, item)
            missed += not ok
            verdict = "CAUGHT" if ok else "MISSED"
            print(f"break {number:2d} {verdict}: {item.what} — {', '.join(item.tests)}")
            if not ok:
                print(f"         {detail}")
    print(f"breaks: {len(BREAKS) - missed}/{len(BREAKS)} caught by the fast tier")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
