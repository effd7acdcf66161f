"""Stop requests (harness/run/interrupts.py) with real signals sent to this process, the
pass-on to a controller's own workers with real child processes, closed pipes
(harness/run/streams.py), and a run's named output files (harness/reporting/outputs.py)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cleanup.liveness import hold
from harness.reporting import outputs
from harness.run.interrupts import Cut, Stop, forward_to_workers
from harness.run.streams import SafeStream


@pytest.fixture
def stop() -> Iterator[Stop]:
    """A Stop holding this process's SIGINT/SIGTERM/SIGUSR1 for one test, then giving them back."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    state = Stop()
    abandoned: list[str] = []
    state.install(abandon=lambda: abandoned.append("abandoned"))
    state.abandoned_calls = abandoned  # type: ignore[attr-defined]
    try:
        yield state
    finally:
        state.uninstall()
    assert {s: signal.getsignal(s) for s in before} == before  # given back as they were


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary of the main thread


def test_the_first_stop_is_recorded_at_once_and_ends_the_tests(stop: Stop) -> None:
    with pytest.raises(KeyboardInterrupt, match="signal SIGTERM"):
        send(signal.SIGTERM)
    assert stop.requested and stop.signal_name == "SIGTERM" and not stop.cut


def test_a_second_stop_abandons_and_exits_130() -> None:
    """In a child process: the second Ctrl-C calls the abandon callback and exits 130 — even
    when it lands inside the handling of the first (the double Ctrl-C that once said
    'passed')."""
    code = textwrap.dedent(
        """
        import os, signal, sys, time
        from harness.run.interrupts import STOP
        STOP.install(abandon=lambda: print("abandon called", flush=True))
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            print("first: stopping the tests", flush=True)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        print("not reached", flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 130, done.stderr
    assert done.stdout.split("\n")[:2] == ["first: stopping the tests", "abandon called"]


def test_a_stop_taken_by_another_thread_still_wakes_the_main_thread_at_once() -> None:
    """The kernel may give a process's signal to any thread (an xdist worker's execnet
    receiver): Python runs the handler only in the main thread, and a main thread asleep in
    a test would not hear it until it woke. Here the main thread blocks SIGINT, so the
    kernel must pick the other thread; the relay kicks the main thread awake at once."""
    code = textwrap.dedent(
        """
        import os, signal, threading, time
        from harness.run.interrupts import STOP
        STOP.install()
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        try:
            time.sleep(20)
        except KeyboardInterrupt:
            print(f"woke after {time.monotonic() - started:.1f}s", flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("woke after "), done.stdout + done.stderr
    assert float(done.stdout.split()[2].rstrip("s")) < 5


def test_a_stop_after_the_final_report_ends_the_process_as_the_report_says() -> None:
    """Settled (the report written with its status), a late Ctrl-C — and a second one —
    exits with the report's status: never a death by SIGINT (130) beside a report that says
    passed (0), even once the plugin that installed the handlers is done."""
    code = textwrap.dedent(
        """
        import os, signal, time
        from harness.run.interrupts import STOP
        STOP.install()  # the harness command
        STOP.install(abandon=lambda: print("abandoned", flush=True))  # the plugin in it
        STOP.settle(0)
        STOP.uninstall(keep_settled=True)  # the plugin's unconfigure
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)
        print("not reached", flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_the_handlers_go_back_when_the_last_installer_is_done() -> None:
    before = signal.getsignal(signal.SIGINT)
    stop = Stop()
    stop.install()
    stop.install()
    stop.uninstall()
    assert signal.getsignal(signal.SIGINT) == stop._handle  # one installer still needs them
    stop.settle(0)
    stop.uninstall(keep_settled=False)  # nested in another pytest: given back all the same
    assert signal.getsignal(signal.SIGINT) == before


def test_giving_the_signals_back_waits_for_the_relay_to_end() -> None:
    """The relay answers each signal with a kick (SIGUSR2, a no-op handler) to the main
    thread; SIGUSR2 may get its default action (terminate) back only once the relay has
    ended — a late kick killed a process under mutmut's load (exit -12). So uninstall
    returns with no relay thread left, every time."""
    import threading

    def relays() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "harness-signal-relay"]

    assert relays() == []
    for _ in range(20):
        stop = Stop()
        stop.install()
        assert len(relays()) == 1
        stop.uninstall()
        assert relays() == []


def test_a_kick_arriving_after_the_handlers_went_back_is_harmless() -> None:
    """A relay slow to end (a loaded machine: its join gives up after 2 s) may kick the main
    thread after uninstall: SIGUSR2 keeps its no-op, never its default action (terminate,
    exit -12 — the fast tier died of it about once in three runs while refresh threads ran).
    The other signals go back to their defaults."""
    code = textwrap.dedent(
        """
        import os, signal, time
        from harness.run.interrupts import STOP
        STOP.install()
        STOP.uninstall()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        os.kill(os.getpid(), signal.SIGUSR2)  # the late kick
        time.sleep(0.2)
        print("alive", flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, "alive\n"), done.stderr


def test_a_relay_given_back_out_of_order_leaves_the_later_one_its_wakeup_fd() -> None:
    """Two installers given back out of order (a plugin's Stop inside a test's): the first
    one's relay ends, but the wakeup fd stays the later one's — never one already closed."""
    first, second = Stop(), Stop()
    first.install()
    second.install()
    try:
        first.uninstall()
        assert second._relay_fds is not None
        current = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(current)
        assert current == second._relay_fds[1]
    finally:
        second.uninstall()
    assert signal.set_wakeup_fd(-1) == -1


def test_a_forwarded_stop_never_abandons() -> None:
    """A controller passes its stop on (SIGUSR1) to workers a terminal's Ctrl-C reached
    already: in a child process, the pass-on after a stop is nothing — never an abandon."""
    code = textwrap.dedent(
        """
        import os, signal, time
        from harness.run.interrupts import STOP
        STOP.install(abandon=lambda: print("abandoned", flush=True))
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(1)
        except KeyboardInterrupt:
            print(f"stopped by {STOP.signal_name}", flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.3)
        print("still cleaning", flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == ["stopped", "by", "SIGUSR1", "still", "cleaning"]


def test_in_the_end_sequence_a_first_stop_raises_only_inside_a_cuttable_wait(stop: Stop) -> None:
    stop.finishing()
    send(signal.SIGINT)  # during cleanup: recorded, nothing raised, cleanup goes on
    assert stop.requested and stop.cut
    with pytest.raises(Cut), stop.cuttable():  # and the waits after it are skipped
        pytest.fail("a cut wait must not run")


def test_a_stop_arriving_inside_a_cuttable_wait_ends_it(stop: Stop) -> None:
    stop.finishing()
    with pytest.raises(Cut), stop.cuttable():
        send(signal.SIGTERM)
        time.sleep(5)
    assert stop.cut


def test_a_stop_that_ended_the_tests_cuts_no_wait_of_the_end_sequence(stop: Stop) -> None:
    with pytest.raises(KeyboardInterrupt):
        send(signal.SIGINT)
    stop.finishing()
    ran = []
    with stop.cuttable():
        ran.append("drain")  # the cleanup after an interrupt still waits for the consumers
    assert ran == ["drain"]


def test_reset_forgets_a_stop_but_keeps_the_handlers(stop: Stop) -> None:
    with pytest.raises(KeyboardInterrupt):
        send(signal.SIGINT)
    stop.reset()
    assert not stop.requested and signal.getsignal(signal.SIGINT) == stop._handle


def test_a_stop_is_passed_on_only_to_our_own_children_that_hold_a_lock(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    mine = hold(folder, "main")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time;"
            "from pathlib import Path; from harness.cleanup.liveness import hold;"
            f"hold(Path({str(folder)!r}), 'gw0');"
            "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(42));"
            "print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    (folder / "gw9.lock").write_text(f"{os.getppid()}\n")  # not our child: never signalled
    try:
        assert forward_to_workers(folder) == [child.pid]
        assert child.wait(timeout=10) == 42
    finally:
        child.kill()
        mine.release()


# -- streams -------------------------------------------------------------------------------------


def test_a_closed_pipe_is_dropped_and_the_descriptor_sent_to_dev_null() -> None:
    read, write = os.pipe()
    stream = os.fdopen(write, "w", buffering=1)
    safe = SafeStream(stream)
    safe.write("first\n")
    os.close(read)  # the reader (`head`) is gone
    assert safe.write("second\n" * 10_000) == len("second\n" * 10_000)
    safe.flush()
    assert safe.broken
    safe.write("third\n")  # and later writes are quietly dropped
    stream.write("the descriptor itself now writes to /dev/null\n")
    stream.flush()
    stream.close()


def test_other_write_errors_are_not_hidden() -> None:
    class Full:
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        SafeStream(Full()).write("x")  # type: ignore[arg-type]


# -- named outputs -------------------------------------------------------------------------------


def test_outputs_are_checked_before_the_run_and_stale_ones_cleared(tmp_path: Path) -> None:
    report, junit = tmp_path / "out" / "r.json", tmp_path / "j.xml"
    given = {"harness_report": str(report), "xmlpath": str(junit), "htmlpath": None}
    named = outputs.named(given.get)
    assert named == {"--report": report, "--junitxml": junit}
    junit.write_text("<old/>")
    outputs.check(named)
    assert report.parent.is_dir() and not list(report.parent.iterdir())  # the probe is gone
    outputs.clear_stale(named, "itest-20261127t100000-abcd")
    assert not junit.exists()
    placeholder = json.loads(report.read_text())
    assert (placeholder["outcome"], placeholder["exit_status"]) == ("incomplete", None)
    assert placeholder["run_id"] == "itest-20261127t100000-abcd"


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("/dev/null/x/r.json", "/dev/null is not a folder"),
        ("{tmp}", "it is a folder"),
        ("{tmp}/file/r.json", "is not a folder"),
    ],
)
def test_an_output_that_cannot_be_written_is_one_line(
    tmp_path: Path, where: str, says: str
) -> None:
    (tmp_path / "file").write_text("")
    path = Path(where.format(tmp=tmp_path))
    with pytest.raises(outputs.OutputError, match=says) as error:
        outputs.check({"--report": path})
    assert str(error.value).startswith(f"--report {path}: ") and "\n" not in str(error.value)


def test_a_report_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    outputs.write_atomic(path, {"outcome": "passed"})

    class Unserializable:
        pass

    with pytest.raises(TypeError):
        outputs.write_atomic(path, {"outcome": Unserializable()})
    assert json.loads(path.read_text()) == {"outcome": "passed"}  # the earlier file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left


def test_a_device_or_a_link_at_an_output_path_is_written_through_never_replaced(
    tmp_path: Path,
) -> None:
    """`--summary /dev/null` or `--report /dev/null` (output thrown away): the device is
    written, never removed or renamed over (as root, unlinking /dev/null deletes the device).
    A fifo stands in for it; a link's target is replaced, the link kept."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        named = {"--report": fifo, "--summary": fifo}
        outputs.check(named)
        outputs.clear_stale(named)  # placeholder written through the pipe, nothing removed
        assert stat.S_ISFIFO(fifo.lstat().st_mode)
        assert b'"outcome": "incomplete"' in os.read(reader, 65536)
    finally:
        os.close(reader)
    target = tmp_path / "real.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    outputs.clear_stale({"--junitxml": link})
    assert link.is_symlink() and target.exists()  # not a regular file itself: left alone
    outputs.write_atomic(link, {"outcome": "passed"})
    assert link.is_symlink() and json.loads(target.read_text()) == {"outcome": "passed"}


def test_a_refused_output_leaves_no_other_output_stale(tmp_path: Path) -> None:
    """One unwritable path refuses the run — and the earlier run's JUnit and summary at the
    others are gone all the same, the JSON report saying why (a green summary.md from last
    time once stayed beside a refused run)."""
    report, junit, summary_md = tmp_path / "r.json", tmp_path / "j.xml", tmp_path / "s.md"
    for path in (report, junit, summary_md):
        path.write_text("from the last run")
    named = {"--report": report, "--junitxml": junit, "--summary": summary_md}
    named["--html"] = Path("/dev/null/x/h.html")
    with pytest.raises(outputs.OutputError, match="--html"):
        outputs.prepare(named, "itest-20261127t100000-abcd")
    assert not junit.exists() and not summary_md.exists()
    said = json.loads(report.read_text())
    assert (said["outcome"], said["exit_status"]) == ("config", 8)
    assert said["error"].startswith("--html /dev/null/x/h.html: ")
