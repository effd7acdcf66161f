"""What the sandbox's launches leave behind: its stderr goes to a file in the folder the test
names (its ``tmp_path``), never to the machine's temporary folder, so a test run leaves
nothing outside its temporary folders.
"""

from __future__ import annotations

from pathlib import Path

from launching import start_process


def test_a_launch_keeps_its_stderr_in_the_folder_it_is_given(tmp_path: Path) -> None:
    proc, stderr_path = start_process(["--bogus"], tmp_path)
    try:
        assert proc.wait(60) == 2
    finally:
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.stdout.close()
    assert stderr_path.parent == tmp_path
    assert out == b""
    assert "--bogus" in stderr_path.read_text()
