"""The local event-source mapping: polls the processor queue and invokes the app's SQS handler.

Owns: what Lambda's SQS trigger does for the deployed service: long-poll the queue (a short
``WaitTimeSeconds`` so shutdown is quick), hand each batch to the ``@app.on_sqs_message``
handler as the Lambda event dict Chalice's ``SQSEvent`` reads, delete the batch after the
handler returns, and leave it on the queue (to be redelivered after its visibility timeout)
when the handler raises, logging why. Must never contain processing logic of its own, and
never delete a message whose handler failed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from chalice.app import Chalice, SQSEventConfig
from chalice.local import LambdaContext

log = logging.getLogger("sandbox.processor")

Handler = Callable[[dict[str, Any], Any], Any]


def find_sqs_handler(module: ModuleType, app: Chalice, queue_name: str) -> tuple[Handler, int]:
    """The module's ``@app.on_sqs_message`` handler for ``queue_name``, and its batch size."""
    for source in app.event_sources:
        if isinstance(source, SQSEventConfig) and source.queue == queue_name:
            handler = getattr(module, source.handler_string.rsplit(".", 1)[-1])
            return handler, source.batch_size
    raise LookupError(f"the app has no @app.on_sqs_message handler for queue {queue_name!r}")


def _attributes(received: dict[str, Any]) -> dict[str, Any]:
    """SQS message attributes as Lambda hands them over (``stringValue``, ``dataType``)."""
    return {
        name: {
            "stringValue": value.get("StringValue"),
            "dataType": value.get("DataType", "String"),
            "stringListValues": [],
            "binaryListValues": [],
        }
        for name, value in received.items()
    }


def lambda_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": _attributes(m.get("MessageAttributes", {})),
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class Processor:
    """A daemon thread polling one queue until ``stop()``."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        region: str,
        handler: Handler,
        batch_size: int = 10,
        wait_seconds: int = 1,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self.handler = handler
        self.batch_size = max(1, min(batch_size, 10))
        self.wait_seconds = wait_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-processor", daemon=True)
        self.processed = 0

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the poller to stop after its current poll, without waiting for it."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("polling %s failed; retrying", self.queue_url)
                self._stop.wait(1.0)

    def poll_once(self) -> int:
        """Receive one batch, invoke the handler, delete on success; messages handled."""
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = got.get("Messages", [])
        if not messages:
            return 0
        context = LambdaContext("process_user_events", 128, max_runtime_ms=60_000)
        try:
            self.handler(lambda_event(messages, self.queue_arn, self.region), context)
        except Exception:
            log.exception(
                "handler failed on %d message(s) %s; left on the queue for redelivery",
                len(messages),
                [m["MessageId"] for m in messages],
            )
            return 0
        self.sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        self.processed += len(messages)
        return len(messages)
