"""What AWS Lambda's runtime does with a function's log lines, for the sandbox's functions.

Owns: which function a thread is running (the API function for the gateway's threads, the
default; a processor's handler is wrapped by :func:`as_function`), the log group and stream
Lambda would write (``/aws/lambda/<function>``, ``YYYY/MM/DD/[$LATEST]<hex>``; functions
named as Chalice deploys them, :func:`function_name`), and shipping: each record the service
logs, formatted by the service's own formatter, is queued and sent with PutLogEvents to
CloudWatch Logs on the emulator every ``interval`` seconds by a thread of its own (as Lambda
delivers asynchronously), and whatever is queued is sent at stop. Must never block or fail
the service's work: a line that cannot be sent is dropped and counted, and the console's
logging is left as it is.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("sandbox.lambda_logs")
_running = threading.local()
#: PutLogEvents takes at most 10,000 events (and 1 MiB) a call.
_BATCH = 1_000


def function_name(app_name: str, stage: str, handler: str = "") -> str:
    """As ``chalice deploy --stage STAGE`` names it: the API handler ``<app>-<stage>``, any
    other ``<app>-<stage>-<handler>``."""
    return f"{app_name}-{stage}" + (f"-{handler}" if handler else "")


def log_group(function: str) -> str:
    return f"/aws/lambda/{function}"


def as_function(function: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler``, whose lines go to ``function``'s log group while it runs."""

    def invoke(*args: Any, **kwargs: Any) -> Any:
        before = getattr(_running, "function", None)
        _running.function = function
        try:
            return handler(*args, **kwargs)
        finally:
            _running.function = before

    return invoke


class LambdaLogs(logging.Handler):
    """Ships log records to their function's log group. ``start()`` then, always, ``stop()``."""

    def __init__(
        self,
        logs_client: Any,
        functions: Iterable[str],
        default: str,
        interval: float = 0.1,
    ) -> None:
        super().__init__(logging.INFO)
        self.client = logs_client
        self.functions = list(dict.fromkeys([default, *functions]))
        self.default = default
        self.interval = interval
        day = time.strftime("%Y/%m/%d", time.gmtime())
        self.streams = {f: f"{day}/[$LATEST]{secrets.token_hex(16)}" for f in self.functions}
        self.dropped = 0
        self._queue: list[tuple[str, int, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-lambda-logs", daemon=True)

    @property
    def log_groups(self) -> list[str]:
        return [log_group(f) for f in self.functions]

    def start(self) -> None:
        """Each function's log group (kept if it exists, as Lambda keeps it) and a stream of
        this sandbox's own; then the shipping thread."""
        for function in self.functions:
            group = log_group(function)
            with contextlib.suppress(self.client.exceptions.ResourceAlreadyExistsException):
                self.client.create_log_group(logGroupName=group)
            self.client.create_log_stream(logGroupName=group, logStreamName=self.streams[function])
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:
            self.handleError(record)
            return
        function = getattr(_running, "function", None) or self.default
        with self._lock:
            self._queue.append((function, int(record.created * 1000), message))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.ship()

    def ship(self) -> None:
        """Send what is queued, each function's lines in time order."""
        with self._lock:
            queued, self._queue = self._queue, []
        by_function: dict[str, list[dict[str, Any]]] = {}
        for function, timestamp, message in queued:
            by_function.setdefault(function, []).append(
                {"timestamp": timestamp, "message": message}
            )
        for function, events in by_function.items():
            events.sort(key=lambda event: event["timestamp"])
            for start in range(0, len(events), _BATCH):
                batch = events[start : start + _BATCH]
                try:
                    self.client.put_log_events(
                        logGroupName=log_group(function),
                        logStreamName=self.streams[function],
                        logEvents=batch,
                    )
                except Exception as error:  # the emulator is going away: drop, never raise
                    self.dropped += len(batch)
                    log.debug("could not ship %d line(s): %s", len(batch), error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self.ship()
