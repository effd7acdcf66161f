"""Waiting without sleeps: ``eventually(fn)`` retries ``fn`` until it stops raising.

It owns one thing: a deadline with exponential backoff and an error that says what was
awaited, how long, how many attempts, and the last error seen. Suites use it instead of
``time.sleep`` for anything asynchronous (event processors, eventual consistency).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class EventuallyTimeout(AssertionError):
    """Raised when the deadline passes; an AssertionError so pytest reports it as a failure."""


def eventually(
    fn: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    backoff: float = 1.5,
    max_interval: float = 1.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    description: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it returns without raising one of ``retry_on``; return its value.

    The wait between attempts starts at ``interval`` and grows by ``backoff`` up to
    ``max_interval``, never sleeping past the deadline. ``fn`` runs at least once.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    deadline = clock() + timeout
    wait = interval
    attempts = 0
    while True:
        attempts += 1
        try:
            return fn()
        except retry_on as error:
            remaining = deadline - clock()
            if remaining <= 0:
                what = description or getattr(fn, "__name__", "condition")
                raise EventuallyTimeout(
                    f"gave up waiting for {what} after {timeout:.1f}s and {attempts} attempts; "
                    f"last error: {type(error).__name__}: {error}"
                ) from error
            sleep(min(wait, remaining))
            wait = min(wait * backoff, max_interval)


def wait_until(
    predicate: Callable[[], object], *, timeout: float = 10.0, description: str | None = None
) -> None:
    """Wait until ``predicate()`` is truthy (``eventually`` waits until it stops raising)."""

    def holds() -> None:
        if not predicate():
            raise AssertionError("condition still false")

    what = description or getattr(predicate, "__name__", "condition")
    eventually(holds, timeout=timeout, description=what)
