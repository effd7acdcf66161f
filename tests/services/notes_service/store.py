"""The notes service's DynamoDB tables: creating them, and every read and write it makes.

Uses a boto3 *client* (thread-safe, unlike resources) shared by all request threads, with
boto3's type (de)serializers so the rest of the service sees plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def _dump(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _SERIALIZER.serialize(value) for key, value in item.items()}


def _load(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _DESERIALIZER.deserialize(value) for key, value in item.items()}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class TableNames:
    accounts: str = "accounts"
    notes: str = "notes"
    sessions: str = "sessions"


class Store:
    def __init__(self, client: Any, names: TableNames) -> None:
        self.client = client
        self.names = names

    def ensure_tables(self) -> None:
        """Create the missing tables (another instance may be creating them too)."""
        key_schemas = {
            self.names.accounts: [("username", "HASH")],
            self.names.notes: [("owner", "HASH"), ("note_id", "RANGE")],
            self.names.sessions: [("session_id", "HASH")],
        }
        for table, keys in key_schemas.items():
            try:
                self.client.create_table(
                    TableName=table,
                    BillingMode="PAY_PER_REQUEST",
                    KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in keys],
                    AttributeDefinitions=[
                        {"AttributeName": name, "AttributeType": "S"} for name, _ in keys
                    ],
                )
            except ClientError as exc:
                if _code(exc) != "ResourceInUseException":
                    raise
                continue
            self.client.get_waiter("table_exists").wait(
                TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
            )
            if table == self.names.sessions:
                self.client.update_time_to_live(
                    TableName=table,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
                )

    # --- accounts ---------------------------------------------------------------------

    def create_account(self, username: str, password_hash: str, created_at: str) -> bool:
        """False when the username is taken."""
        item = {"username": username, "password_hash": password_hash, "created_at": created_at}
        try:
            self.client.put_item(
                TableName=self.names.accounts,
                Item=_dump(item),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": "username"},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get_account(self, username: str) -> dict[str, Any] | None:
        return self._get(self.names.accounts, {"username": username})

    def delete_account(self, username: str) -> None:
        self.client.delete_item(TableName=self.names.accounts, Key=_dump({"username": username}))

    # --- sessions ---------------------------------------------------------------------

    def create_session(self, session_id: str, username: str, expires_at: int) -> None:
        item = {"session_id": session_id, "username": username, "expires_at": expires_at}
        self.client.put_item(TableName=self.names.sessions, Item=_dump(item))

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        return self._get(self.names.sessions, {"session_id": session_id})

    # --- notes ------------------------------------------------------------------------

    def put_note(self, owner: str, note_id: str, text: str, created_at: str) -> None:
        item = {"owner": owner, "note_id": note_id, "text": text, "created_at": created_at}
        self.client.put_item(TableName=self.names.notes, Item=_dump(item))

    def put_note_if_account(self, owner: str, note_id: str, text: str, created_at: str) -> bool:
        """Write the note only while its owner's account exists (one transaction)."""
        item = {"owner": owner, "note_id": note_id, "text": text, "created_at": created_at}
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self.names.accounts,
                            "Key": _dump({"username": owner}),
                            "ConditionExpression": "attribute_exists(#k)",
                            "ExpressionAttributeNames": {"#k": "username"},
                        }
                    },
                    {"Put": {"TableName": self.names.notes, "Item": _dump(item)}},
                ]
            )
        except ClientError as exc:
            if _code(exc) == "TransactionCanceledException":
                return False
            raise
        return True

    def list_notes(self, owner: str) -> list[dict[str, Any]]:
        notes: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.names.notes,
            KeyConditionExpression="#o = :o",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues=_dump({":o": owner}),
        ):
            notes.extend(_load(item) for item in page.get("Items", []))
        return notes

    def delete_note(self, owner: str, note_id: str) -> bool:
        """False when there was no such note."""
        response = self.client.delete_item(
            TableName=self.names.notes,
            Key=_dump({"owner": owner, "note_id": note_id}),
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=table, Key=_dump(key), ConsistentRead=True)
        item = response.get("Item")
        return _load(item) if item else None
