"""Kinds declared without code: DynamoDB items that tests create, named in the profile.

```toml
[local.kinds.note]
table = "notes"
key = ["owner", "note_id"]      # hash key, then range key if the table has one
marker = "owner"                # the attribute whose value carries the run namespace
index = "by-owner"              # optional: a GSI whose hash key is the marker attribute
run_index = "by-run"            # optional: a sparse GSI whose hash key, run_attribute,
run_attribute = "HarnessRun"    #   holds the run id, on items tests made only
```

With ``run_index``, the residue check finds everything a run left in the table, recorded or
not, with one ``Query`` of that index (O(what it finds)), whatever the table's size.

Owns finding (a paginated, projected scan for the sweeper; by key, by the marker when it is
the hash key, or through the declared index otherwise), deleting (a conditional delete: only
while the item still carries the marker the guard checked; batched for the sweeper) and
telling which items belong to a recorded resource: an item whose marker *is* that resource's
namespaced name, or continues it after a separator (:func:`~harness.namespace.belongs`:
``…-ann-session`` is ``…-ann``'s, ``…-ann1`` is not), was written for it (a session row, a
welcome note the service wrote by itself) and is cleaned with it. It writes an item only when
a test asks, through ``ledger.put(kind, item)`` (journaled and gated first): ``put`` is a
conditional put that never replaces an item already under that key.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from harness.cleanup.ledger import CreateRefused, NotCreated, OwnershipError
from harness.kinds.base import Found, Kind, Outcome
from harness.kinds.dynamo import batch_delete, batch_get, is_condition_failed, scan_prefix
from harness.namespace import RunId, belongs

if TYPE_CHECKING:
    from harness.clients.aws import Aws
    from harness.config import Profile
    from harness.kinds.dynamo import ScanControl


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _key_of(item: Mapping[str, Any], key: list[str]) -> tuple[str, ...]:
    return tuple(str(_plain(item.get(k))) for k in key)


def _run_of(prefix: str) -> str | None:
    """The run id a prefix names (``itest-20261127t172503-k3f9-`` or a namespace), or None
    for the sweeper's ``itest-``."""
    parts = prefix.split("-")
    if len(parts) < 3:
        return None
    try:
        return str(RunId.parse("-".join(parts[:3])))
    except ValueError:
        return None


class DeclaredKind(Kind):
    """One ``[profile.kinds.NAME]`` table."""

    def __init__(
        self,
        name: str,
        profile: Profile,
        aws: Aws,
        *,
        table: str,
        key: list[str],
        marker: str,
        index: str = "",
        sweep_order: int = 50,
        run_index: str = "",
        run_attribute: str = "",
    ) -> None:
        super().__init__(profile, aws)
        # A declared kind's name and order are data, not a class: set per instance.
        self.__dict__["name"] = name
        self.__dict__["sweep_order"] = sweep_order
        self.table_name = table
        self.key = key
        self.marker_attribute = marker
        self.index = index
        # ``related`` costs O(what it finds) (no scan) when the marker is the hash key or
        # indexed; the residue check asks it for each recorded resource only then.
        self.__dict__["related_by_key"] = marker == key[0] or bool(index)
        self.run_index = run_index
        self.run_attribute = run_attribute
        # A run's items come from the sparse run index, never a scan: the residue check
        # may look namespace-wide in every run.
        self.__dict__["find_is_cheap"] = bool(run_index and run_attribute)

    @classmethod
    def from_spec(
        cls, name: str, spec: Mapping[str, Any], profile: Profile, aws: Aws
    ) -> DeclaredKind:
        key = spec["key"]
        return cls(
            name,
            profile,
            aws,
            table=str(spec["table"]),
            key=[key] if isinstance(key, str) else list(key),
            marker=str(spec["marker"]),
            index=str(spec.get("index", "")),
            sweep_order=int(spec.get("sweep_order", 50)),
            run_index=str(spec.get("run_index", "")),
            run_attribute=str(spec.get("run_attribute", "")),
        )

    def _table(self) -> Any:
        return self.aws.table(self.table_name)

    def _found(self, item: Mapping[str, Any]) -> Found:
        ids = {k: _plain(item[k]) for k in self.key if k in item}
        ids[self.marker_attribute] = _plain(item.get(self.marker_attribute, ""))
        shown = ", ".join(f"{k}={ids[k]}" for k in self.key if k in ids)
        return Found(
            self.name,
            ids,
            f"{self.name} {shown} in {self.table_name}",
            marker=str(item.get(self.marker_attribute, "")),
        )

    def _projection(self) -> tuple[str, dict[str, str]]:
        attributes = dict.fromkeys([*self.key, self.marker_attribute])
        names = {f"#p{i}": a for i, a in enumerate(attributes)}
        return ", ".join(names), names

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        value = ids.get(self.marker_attribute)
        return None if value is None else str(value)

    def intent(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The item's key attributes and marker: what ``ledger.put`` journals before writing."""
        wanted = list(dict.fromkeys([*self.key, self.marker_attribute]))
        missing = [name for name in wanted if name not in item]
        if missing:
            raise CreateRefused(
                f"ledger.put({self.name!r}, …): the item has no {', '.join(missing)}; kind "
                f"{self.name} is keyed by {self.key} and marked by {self.marker_attribute!r} "
                f"in table {self.table_name}"
            )
        return {name: _plain(item[name]) for name in wanted}

    def put(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``item`` unless an item with its key exists (never someone else's row
        replaced): then :class:`NotCreated`, and nothing was written."""
        try:
            self._table().put_item(
                Item=dict(item),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": self.key[0]},
            )
        except ClientError as error:
            if not is_condition_failed(error):
                raise
            key = {name: _plain(item[name]) for name in self.key}
            raise NotCreated(
                f"ledger.put({self.name!r}, …): an item with key {key} is already in "
                f"{self.table_name}; not replacing it (nothing was written)"
            ) from None
        return self.intent(item)

    def _full_key(self, ids: Mapping[str, Any]) -> dict[str, Any] | None:
        if all(k in ids for k in self.key):
            return {k: ids[k] for k in self.key}
        return None

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        key = self._full_key(ids)
        if key is None:
            # The create's answer was lost (a crash, a timeout): only the marker is known.
            # Everything carrying exactly that marker is the resource.
            marker = str(ids[self.marker_attribute])
            deleted = [self.delete(f.ids) for f in self.related(marker) if f.marker == marker]
            return "deleted" if "deleted" in deleted else "absent"
        marker = str(ids[self.marker_attribute])
        try:
            self._table().delete_item(
                Key=key,
                ConditionExpression="#m = :m",
                ExpressionAttributeNames={"#m": self.marker_attribute},
                ExpressionAttributeValues={":m": marker},
            )
            return "deleted"
        except ClientError as error:
            if not is_condition_failed(error):
                raise
        if self._get(key) is not None:
            raise OwnershipError(
                f"{self.name} {key} in {self.table_name} no longer carries {marker!r}; left alone"
            )
        return "absent"

    def _get(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        projection, names = self._projection()
        item = (
            self._table()
            .get_item(
                Key=dict(key),
                ConsistentRead=True,
                ProjectionExpression=projection,
                ExpressionAttributeNames=names,
            )
            .get("Item")
        )
        return dict(item) if item is not None else None

    def exists(self, ids: Mapping[str, Any]) -> Found | None:
        key = self._full_key(ids)
        if key is None:
            marker = str(ids.get(self.marker_attribute, ""))
            found = [f for f in self.related(marker) if f.marker == marker] if marker else []
            return found[0] if found else None
        item = self._get(key)
        return self._found(item) if item is not None else None

    def related(self, owner_marker: str) -> list[Found]:
        """Items whose marker belongs to ``owner_marker`` (:func:`~harness.namespace.belongs`):
        equal to it, by key when the marker is the hash key or through the declared index;
        else equal or continuing it after a separator, by a filtered scan — never a
        look-alike's (the scan's ``begins_with`` also finds ``…-ann1`` for ``…-ann``)."""
        projection, names = self._projection()
        if self.marker_attribute == self.key[0] and len(self.key) == 1:
            item = self._get({self.key[0]: owner_marker})
            return [self._found(item)] if item is not None else []
        if self.marker_attribute == self.key[0] or self.index:
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": "#m = :m",
                "ExpressionAttributeNames": {**names, "#m": self.marker_attribute},
                "ExpressionAttributeValues": {":m": owner_marker},
                "ProjectionExpression": projection,
            }
            # equivalent mutants: in this branch the marker is the hash key or an index is set
            if self.index and self.marker_attribute != self.key[0]:  # pragma: no mutate
                kwargs["IndexName"] = self.index
            else:
                kwargs["ConsistentRead"] = True
            found = []
            while True:
                page = self._table().query(**kwargs)
                found += [self._found(i) for i in page.get("Items", [])]
                if "LastEvaluatedKey" not in page:
                    return found
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [f for f in self.find(owner_marker) if belongs(f.marker, owner_marker)]

    def find(self, prefix: str, scan: ScanControl | None = None) -> list[Found]:
        """Items whose marker starts with ``prefix``: a run's (``itest-…-k3f9-``) through the
        sparse run index when one is declared, anything else by a projected scan."""
        projection, names = self._projection()
        run = _run_of(prefix)
        if self.find_is_cheap and run is not None:
            return [f for f in self._query_run(run) if f.marker.startswith(prefix)]
        return [
            self._found(item)
            for item in scan_prefix(
                self._table(), self.marker_attribute, prefix, projection, names=names, scan=scan
            )
        ]

    def _query_run(self, run: str) -> list[Found]:
        projection, names = self._projection()
        kwargs: dict[str, Any] = {
            "IndexName": self.run_index,
            "KeyConditionExpression": "#r = :r",
            "ExpressionAttributeNames": {**names, "#r": self.run_attribute},
            "ExpressionAttributeValues": {":r": run},
            "ProjectionExpression": projection,
        }
        found = []
        while True:
            page = self._table().query(**kwargs)
            found += [self._found(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def exists_many(self, ids: list[Mapping[str, Any]]) -> list[Found]:
        """Recorded items by key, ``BatchGetItem`` 100 a call; those recorded without their
        full key (a lost create answer) by their marker."""
        keyed = [key for one in ids if (key := self._full_key(one)) is not None]
        found = [f for one in ids if self._full_key(one) is None if (f := self.exists(one))]
        if keyed:
            projection, names = self._projection()
            items = batch_get(self._table(), keyed, projection, names)
            by_key = {_key_of(item, self.key): item for item in items}
            for key in keyed:
                item = by_key.get(_key_of(key, self.key))
                if item is not None:
                    found.append(self._found(item))
        return found

    def delete_many(self, ids: list[dict[str, Any]]) -> int:
        keys = [key for one in ids if (key := self._full_key(one)) is not None]
        return batch_delete(self._table(), keys)
