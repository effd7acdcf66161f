"""DynamoDB transactions that are atomic under concurrency, and key operations at O(1).

Owns three things moto's DynamoDB gets wrong for a sandbox that serves concurrent requests
against tables of any size (moto 5.2, ``moto/dynamodb/models``):

- ``DynamoDBBackend.transact_write_items`` deep-copies every table the transaction names
  before it starts and, when any part fails, puts those copies back in place of the tables.
  Whatever another request wrote in between is lost: a failing ``ConditionCheck`` that ran
  beside a ``DeleteItem`` brought the deleted item back (the service's
  ``put_welcome_if_user_exists`` resurrected users). The copy also costs O(table size) per
  transaction (seconds on a table of 100,000 items), and copying a table while another
  thread writes to it can fail outright ("dictionary changed size during iteration").
  Here a transaction keeps an undo log instead: before each write it keeps the one item the
  write replaces, and on failure it puts back only those items, in reverse order.
- Nothing in moto orders one request against another: moto serves requests on several
  threads, so a transaction's writes could interleave with any other request's. Here every
  DynamoDB request runs under ``moto_bounds.items_lock`` (the lock moto_bounds already holds
  around each table's item writes), so a transaction — its condition checks, its writes and
  its undo — is never observed or interleaved half-way, and an undo can only ever restore
  items nobody else touched. moto does CPU-bound work under the interpreter's global lock
  anyway, so serialising its DynamoDB requests costs no throughput; a long ``Scan`` now
  delays other requests until it ends instead of sharing time slices with them.
- ``Table.query`` without an index builds, and sorts, the list of every item of the table
  (``Table.all_items``) and then keeps the items of one hash key: O(n log n) in the table's
  size per ``Query``. Here such a query reads only that hash key's bucket (the same items,
  in the same order).

Answers stay moto's: the transaction code below mirrors moto's own step for step (same
checks in the same order, same errors, same ``CancellationReasons``); only the backup and
the restore differ. One deliberate difference: moto applies the earlier operations of a
request whose item names two operations and then rejects it without undoing them; here they
are undone. Must never be imported outside the emulator child (it patches moto's classes);
``tests/sandbox/test_moto_transactions.py`` compares it with stock moto.
"""

from __future__ import annotations

import copy
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from .moto_bounds import items_lock

_installed = False


def install() -> None:
    """Patch moto (idempotent). Call before the first request."""
    global _installed
    if _installed:
        return
    _serialise_requests()
    _journal_transactions()
    _query_one_bucket()
    _installed = True


# --- one DynamoDB request at a time --------------------------------------------------------


def _serialise_requests() -> None:
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    @functools.wraps(original)
    def call_action(self: Any) -> Any:
        with items_lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


# --- transactions with an undo log ---------------------------------------------------------


class UndoLog:
    """The items a transaction's writes replaced, to put back if the transaction fails.

    Only correct while no other request can write in between (``items_lock``): each entry
    restores the item as it was before this transaction's own write, nothing else.
    """

    def __init__(self) -> None:
        #: (table, hash key, range key, the item before the write or None)
        self.entries: list[tuple[Any, Any, Any, Any]] = []
        #: id(table) -> (table, its stream shard, the shard's record count before the writes)
        self.streams: dict[int, tuple[Any, Any, int]] = {}

    def remember(self, backend: Any, table_name: str, key: dict[str, Any], op_type: str) -> None:
        """Keep what the coming write to ``key`` replaces (call just before the write)."""
        table = backend.get_table(table_name)
        hash_key, range_key = backend.get_keys_value(table, key)
        before = table.get_item(hash_key, range_key)
        if before is not None and op_type == "Update":
            before = copy.deepcopy(before)  # an update changes the stored item in place
        self.entries.append((table, hash_key, range_key, before))
        shard = table.stream_shard
        if shard is not None and id(table) not in self.streams:
            self.streams[id(table)] = (table, shard, len(shard.items))

    def undo(self) -> None:
        for table, hash_key, range_key, before in reversed(self.entries):
            if table.range_key_attr is None:
                if before is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = before
            elif before is not None:
                table.items[hash_key][range_key] = before
            else:
                bucket = table.items.get(hash_key)
                if bucket is not None:
                    bucket.pop(range_key, None)
                    if not bucket:
                        del table.items[hash_key]  # as moto_bounds: no empty buckets
        for table, shard, count in self.streams.values():
            # the records of writes that never happened (moto's restored copy had none)
            if table.stream_shard is shard and len(shard.items) >= count:
                del shard.items[count:]
        self.entries.clear()
        self.streams.clear()


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's ``DynamoDBBackend.transact_write_items`` with an undo log instead of copies."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    undo = UndoLog()
    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str, str, dict[str, Any] | None] | tuple[None, None, None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            undo.undo()  # moto leaves the earlier operations applied
            raise TransactWriteSingleOpException

        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")

            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            expression_attribute_names = op.get("ExpressionAttributeNames")
            expression_attribute_values = op.get("ExpressionAttributeValues")
            return_values_on_condition_check_failure = op.get("ReturnValuesOnConditionCheckFailure")

            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]

            check_unicity(table_name, key)

            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(
                    condition_expression,
                    expression_attribute_names,
                    expression_attribute_values,
                )
                if not condition_op.expr(current):
                    if return_values_on_condition_check_failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)

            if op_type != "ConditionCheck":
                undo.remember(self, table_name, key, op_type)
            if op_type == "Put":
                self.put_item(
                    table_name,
                    op["Item"],
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            undo.undo()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # as moto: any other failure cancels the transaction
            errors.append((type(e).__name__, str(e), original_item))

    if any(code is not None for code, _, _ in errors):
        undo.undo()
        raise TransactionCanceledException(errors)


def _journal_transactions() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


# --- Query on a hash key reads one bucket ----------------------------------------------------

_query = threading.local()


def _query_one_bucket() -> None:
    from moto.dynamodb.models.table import Table

    original_query: Callable[..., Any] = Table.query
    original_all_items: Callable[..., Any] = Table.all_items
    parameters = list(inspect.signature(original_query).parameters)
    if parameters[:2] != ["self", "hash_key"] or "index_name" not in parameters:
        return  # a moto whose query we have not read: leave it alone
    index_position = parameters.index("index_name")

    @functools.wraps(original_query)
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = (
            args[index_position - 1] if len(args) >= index_position else kwargs.get("index_name")
        )
        hash_key = args[0] if args else kwargs.get("hash_key")
        if index_name or hash_key is None:
            return original_query(self, *args, **kwargs)
        # Table.query (no index) keeps, of all_items(), those whose hash key is hash_key
        _query.bucket = (self, hash_key)
        try:
            return original_query(self, *args, **kwargs)
        finally:
            _query.bucket = None

    @functools.wraps(original_all_items)
    def all_items(self: Any) -> Any:
        bucket = getattr(_query, "bucket", None)
        if bucket is None or bucket[0] is not self:
            return original_all_items(self)
        found = self.items.get(bucket[1])  # .get: never adds a bucket
        if found is None:
            return []
        items = list(found.values()) if self.range_key_attr else [found]
        return sorted(  # moto's order
            items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key
        )

    Table.query = query  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]
