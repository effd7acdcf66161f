"""Bounds on what moto keeps, for a long-lived emulator process.

Owns three places where moto keeps everything it ever saw. A sandbox that serves a
nightly's worth of tests, or sits under ``harness env up`` for a day, cannot afford them —
and the third made every request slower the longer the sandbox lived (the overhead bench's
runs grew ~4% slower per 300 users, so its two sides never saw the same sandbox):

- ``BaseModel`` appends every model instance it creates — each DynamoDB item version, each
  SQS message and its received copies — to a class-level ``instances_tracked`` list, for
  moto's dashboard (``/moto-api/data.json``) only, so deleted data stays reachable (~0.2 MB
  per user's sign-up → delete cycle) and every full garbage collection walks it. Here
  instances are not tracked (the dashboard lists none; nothing in the sandbox or the
  harness reads it).
- An SNS topic keeps every message published to it (``Topic.sent_notifications``, an
  in-process inspection list that server mode cannot reach); here it keeps the last
  ``SENT_NOTIFICATIONS_KEPT``.
- A table with a sort key keeps its items in a ``defaultdict`` of hash-key buckets: reading
  a missing key adds an empty bucket, deleting the last item leaves one. ``Query`` walks
  every bucket (``Table.all_items``), so each user ever seen — the notifications table has
  one bucket per uid — made every later query on that table slower. Here an empty bucket is
  dropped by the call that emptied or created it, under one lock with every call that can
  fill a bucket (moto serves requests on several threads), so no item is ever dropped.

Must never be imported outside the emulator child (it patches moto's classes) and must
never change what moto answers: ``tests/sandbox/test_moto_bounds.py`` checks both.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

SENT_NOTIFICATIONS_KEPT = 100

_installed = False
#: held by every Table call that adds to, empties or drops a hash-key bucket; also held by
#: every DynamoDB request for its whole length once ``moto_transactions`` is installed
items_lock = threading.RLock()


def install() -> None:
    """Patch moto (idempotent). Call before the first request."""
    global _installed
    if _installed:
        return
    _stop_tracking_instances()
    _bound_sent_notifications()
    _drop_empty_buckets()
    _installed = True


def _stop_tracking_instances() -> None:
    from moto.core.common_models import BaseModel
    from moto.core.model_instances import reset_model_data

    def untracked_new(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        # what BaseModel.__new__ does, minus ``cls.instances_tracked.append(instance)``
        return super(BaseModel, cls).__new__(cls)

    BaseModel.__new__ = staticmethod(untracked_new)  # type: ignore[method-assign]
    reset_model_data()  # drop what was tracked before the patch (import-time instances)


def _bound_sent_notifications() -> None:
    from moto.sns.models import Topic

    original_init = Topic.__init__

    @functools.wraps(original_init)
    def bounded_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.sent_notifications = deque(maxlen=SENT_NOTIFICATIONS_KEPT)

    Topic.__init__ = bounded_init  # type: ignore[method-assign]


def _drop_empty_buckets() -> None:
    from moto.dynamodb.models.table import Table

    def drop_if_empty(table: Any, hash_key: Any) -> None:
        if table.range_key_attr and hash_key in table.items and not table.items[hash_key]:
            del table.items[hash_key]

    def bucket_safe(method: Callable[..., Any], drops: bool) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with items_lock:
                try:
                    return method(self, *args, **kwargs)
                finally:
                    if drops:
                        drop_if_empty(self, args[0] if args else kwargs.get("hash_key"))

        return call

    Table.get_item = bucket_safe(Table.get_item, drops=True)  # type: ignore[method-assign]
    Table.delete_item = bucket_safe(Table.delete_item, drops=True)  # type: ignore[method-assign]
    # put_item fills a bucket: it must not interleave with a drop of the same bucket
    Table.put_item = bucket_safe(Table.put_item, drops=False)  # type: ignore[method-assign]
