"""Output streams that a closed reader cannot turn into a failed cleanup.

``harness run … | head -2`` closes the pipe after two lines; the next write raises
``BrokenPipeError``, and anything that writes progress — pytest's terminal reporter, the
harness's own lines — would end the run there, before its cleanup, residue check and report.
Owns one guard: :func:`guard` wraps ``sys.stdout`` / ``sys.stderr`` so that a write to a
closed pipe points the file descriptor at ``/dev/null`` (the recipe of Python's own docs, so
the interpreter's last flush cannot fail either) and is dropped; everything else goes on.
Nothing here reads or writes the environment.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Any, TextIO


class SafeStream:
    """A text stream whose writes survive the reader going away."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except OSError as error:
            self._broken(error)
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except OSError as error:
            self._broken(error)

    def _broken(self, error: OSError) -> None:
        if error.errno not in (errno.EPIPE, errno.EBADF, errno.EINVAL):
            raise error
        self.broken = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard() -> None:
    """Wrap this process's stdout and stderr (once)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, SafeStream):
            setattr(sys, name, SafeStream(stream))
