"""Quiescence: waiting, with a deadline, until the service's consumer has nothing in flight.

Owns one question — has the processor queue drained (no visible, in-flight or delayed
messages, seen twice in a row since the counts are approximate)? — so cleanup and the residue
check decide about the environment only after asynchronous writes have landed: a record a
consumer writes late is then found, counted and removed instead of being missed. On a busy
shared environment the queue may never be empty; the deadline bounds the wait and the caller
is told. It only reads queue attributes; it never receives or deletes a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def pending(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(COUNTS))
    return sum(int(attributes["Attributes"].get(name, 0)) for name in COUNTS)


def wait_for_quiescence(
    sqs: Any,
    queue_url: str,
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    calm_checks: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> bool:
    """True once ``queue_url`` shows nothing pending ``calm_checks`` times in a row; False
    when ``timeout`` passes first (the caller goes on, saying so)."""
    deadline = time.monotonic() + timeout
    calm = 0
    told = False
    while True:
        count = pending(sqs, queue_url)
        calm = calm + 1 if count == 0 else 0
        if calm >= calm_checks:
            return True
        if time.monotonic() >= deadline:
            return False
        if count and not told:
            told = True
            progress(f"waiting for {count} event(s) in the consumer's queue to be processed")
        time.sleep(interval)
