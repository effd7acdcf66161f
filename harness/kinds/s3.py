"""Kinds declared in an S3 bucket: the objects tests write, found and deleted with no code.

```toml
[local.kinds.upload]
type = "s3"
bucket = "uploads"
marker = "key"                 # the object key carries the namespace
prefix = "avatars/"            # optional: the key's start before the namespace
```

An object is the kind's when its key is ``<prefix><namespace>…`` (``avatars/itest-…-gw0-ann/
photo.png``); its marker is the key after the prefix. A key outside the prefix, or whose rest
does not start with a harness namespace, has no marker: the gate refuses it.

Owns finding (``ListObjectsV2`` by the prefix ``<prefix><run prefix>`` — a listing that costs
what it finds; on a versioned bucket ``ListObjectVersions``, every version and delete marker
under it: the run made those keys, so all of their history is the run's), telling what
exists by key (``HeadObject``; versions by a listing of the key), what belongs to a resource
(:func:`~harness.namespace.belongs`: ``…-ann/photo.png`` is ``…-ann``'s, ``…-ann1/…`` is
not), and deleting (``DeleteObjects``, 1,000 keys a call, only keys whose marker it has
checked again right before: S3 has no conditional delete by content, and the key is what
carries the marker). It never writes an object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from harness.cleanup.ledger import OwnershipError
from harness.kinds.base import Found, Outcome
from harness.kinds.stores import FAIL, OK, StoreCheck, StoreKind, paged
from harness.namespace import NAMESPACE_IN_TEXT_RE, belongs

if TYPE_CHECKING:
    from harness.clients.aws import Aws
    from harness.config import Profile
    from harness.kinds.dynamo import ScanControl

#: DeleteObjects' largest batch.
DELETE_BATCH = 1000
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


class S3Kind(StoreKind):
    """One ``[profile.kinds.NAME]`` with ``type = "s3"``."""

    store = "s3"
    # A prefix listing costs what it finds: the residue check looks namespace-wide every run.
    find_is_cheap = True

    def __init__(
        self,
        name: str,
        profile: Profile,
        aws: Aws,
        *,
        bucket: str,
        prefix: str,
        sweep_order: int,
    ) -> None:
        super().__init__(name, profile, aws, sweep_order=sweep_order)
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any], profile: Profile, aws: Aws) -> S3Kind:
        return cls(
            name,
            profile,
            aws,
            bucket=str(spec["bucket"]),
            prefix=str(spec.get("prefix", "")),
            sweep_order=int(spec.get("sweep_order", 50)),
        )

    @property
    def client(self) -> Any:
        return self.aws.s3

    @property
    def versioned(self) -> bool:
        """Whether the bucket keeps versions (versioning enabled, or suspended after it was):
        asked once."""
        if "_versioned" not in self.__dict__:
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
            self.__dict__["_versioned"] = status in ("Enabled", "Suspended")
        return bool(self.__dict__["_versioned"])

    # --- what an object is ------------------------------------------------------------

    def marker(self, ids: Mapping[str, Any]) -> str | None:
        """The key after the prefix, when it starts with a harness namespace; else None."""
        key = ids.get("key")
        if key is None or not str(key).startswith(self.prefix):
            return None
        rest = str(key)[len(self.prefix) :]
        match = NAMESPACE_IN_TEXT_RE.match(rest)
        return rest if match is not None else None

    def _found(self, key: str, version: str | None = None, what: str = "object") -> Found:
        ids: dict[str, Any] = {"key": key}
        if version is not None:
            ids["version_id"] = version
        shown = f" version {version}" if version is not None else ""
        return Found(
            self.name,
            ids,
            f"{self.name} {what} s3://{self.bucket}/{key}{shown}",
            marker=self.marker(ids) or "",
        )

    # --- finding ----------------------------------------------------------------------

    def _listing(self, prefix: str, scan: ScanControl | None = None) -> list[Found]:
        """Every object under ``<prefix>`` (on a versioned bucket: every version and delete
        marker), in pages of 1,000, within the sweeper's budget."""
        full = self.prefix + prefix
        versioned = self.versioned

        def fetch(token: Any) -> tuple[list[dict[str, Any]], Any, int]:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if not versioned:
                if token is not None:
                    kwargs["ContinuationToken"] = token
                page = self.client.list_objects_v2(**kwargs)
                items = [{"key": o["Key"]} for o in page.get("Contents", [])]
                return items, page.get("NextContinuationToken"), len(items)
            if token is not None:
                kwargs["KeyMarker"], kwargs["VersionIdMarker"] = token
            page = self.client.list_object_versions(**kwargs)
            items = [
                {"key": v["Key"], "version_id": v["VersionId"], "what": what}
                for what, entries in (
                    ("version", page.get("Versions", [])),
                    ("delete marker", page.get("DeleteMarkers", [])),
                )
                for v in entries
            ]
            following = (
                [page["NextKeyMarker"], page["NextVersionIdMarker"]]
                if page.get("IsTruncated")
                else None
            )
            return items, following, len(items)

        items = paged(fetch, store=self.bucket, scope=f"{versioned}\0{full}", scan=scan)
        return [
            self._found(i["key"], i.get("version_id"), i.get("what", "object"))
            for i in items
            if i["key"].startswith(full)
        ]

    def find(self, prefix: str, scan: ScanControl | None = None) -> list[Found]:
        """Objects whose marker starts with ``prefix``: a listing of ``<prefix><prefix>``."""
        return [f for f in self._listing(prefix, scan) if f.marker.startswith(prefix)]

    def related(self, owner_marker: str) -> list[Found]:
        """Objects (versions) whose marker belongs to ``owner_marker``: ``…-ann/photo.png``
        and ``…-ann`` itself, never a look-alike's ``…-ann1/…``."""
        return [f for f in self._listing(owner_marker) if belongs(f.marker, owner_marker)]

    def exists(self, ids: Mapping[str, Any]) -> Found | None:
        key = str(ids["key"])
        if self.versioned:
            same = [f for f in self._listing(key[len(self.prefix) :]) if f.ids["key"] == key]
            wanted = ids.get("version_id")
            same = [f for f in same if wanted is None or f.ids["version_id"] == wanted]
            return same[0] if same else None
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _code(error) in _MISSING:
                return None
            raise
        return self._found(key)

    def exists_many(self, ids: list[Mapping[str, Any]]) -> list[Found]:
        """The recorded objects still there: keys of one run share its namespace, so one
        listing of their common prefix (``<prefix>itest-<run>-…``) answers for all of them —
        a call per 1,000 objects the run left, not one per key; keys without a marker, or
        without such a prefix in common, are asked one by one."""
        keys = [str(one["key"]) for one in ids]
        common = os.path.commonprefix(keys)[len(self.prefix) :]  # noqa: RUF071 - by character
        if len(ids) < 2 or NAMESPACE_IN_TEXT_RE.match(common) is None:
            return super().exists_many(ids)
        there: dict[str, list[Found]] = {}
        for found in self._listing(common):
            there.setdefault(found.ids["key"], []).append(found)
        present = []
        for one in ids:
            wanted = one.get("version_id")
            same = [
                f
                for f in there.get(str(one["key"]), [])
                if wanted in (None, f.ids.get("version_id"))
            ]
            present += same[:1]
        return present

    # --- deleting ---------------------------------------------------------------------

    def _checked(self, ids: Mapping[str, Any]) -> dict[str, str]:
        """The object to delete, once its key is seen to carry a marker again (the gate
        checked it; this is the store's own check, right before the request)."""
        if self.marker(ids) is None:
            raise OwnershipError(
                f"refusing to delete s3://{self.bucket}/{ids.get('key')}: its key does not "
                f"carry a harness namespace after {self.prefix!r}"
            )
        entry = {"Key": str(ids["key"])}
        if ids.get("version_id") is not None:
            entry["VersionId"] = str(ids["version_id"])
        return entry

    def _delete_objects(self, entries: list[dict[str, str]]) -> int:
        """``DeleteObjects``, 1,000 a call; raises on any error but a missing key."""
        deleted = 0
        for start in range(0, len(entries), DELETE_BATCH):
            batch = entries[start : start + DELETE_BATCH]
            request: dict[str, Any] = {"Objects": batch}
            # equivalent: Quiet only leaves the deleted keys out of the answer, never read
            request["Quiet"] = True  # pragma: no mutate
            answer = self.client.delete_objects(Bucket=self.bucket, Delete=request)
            errors = [e for e in answer.get("Errors", []) if e.get("Code") not in _MISSING]
            if errors:
                first = errors[0]
                raise RuntimeError(
                    f"S3 refused to delete {len(errors)} object(s) of s3://{self.bucket}, "
                    f"e.g. {first['Key']}: "
                    + " ".join(str(first[part]) for part in ("Code", "Message") if part in first)
                )
            deleted += len(batch)
        return deleted

    def delete(self, ids: Mapping[str, Any]) -> Outcome:
        """The object; on a versioned bucket (without a version id) all its versions and
        delete markers, else the one version named."""
        entry = self._checked(ids)
        every_version = "VersionId" not in entry
        # equivalent: an unversioned key is one object, listed or looked up it is deleted the same
        if self.versioned and every_version:  # pragma: no mutate
            entries = [
                self._checked(f.ids) for f in self._listing(entry["Key"][len(self.prefix) :])
            ]
            entries = [e for e in entries if e["Key"] == entry["Key"]]
        elif self.exists(ids) is None:
            return "absent"
        else:
            entries = [entry]
        if not entries:
            return "absent"
        self._delete_objects(entries)
        return "deleted"

    def delete_many(self, ids: list[dict[str, Any]]) -> int:
        """Objects (or versions) the gate has checked, ``DeleteObjects`` 1,000 a call, each
        key's marker checked once more first. Keys without a version id on a versioned
        bucket go one by one (their versions must be listed)."""
        whole = [one for one in ids if self.versioned and one.get("version_id") is None]
        entries = [self._checked(one) for one in ids if one not in whole]
        unique = list({(e["Key"], e.get("VersionId")): e for e in entries}.values())
        deleted = self._delete_objects(unique)
        return deleted + sum(self.delete(one) == "deleted" for one in whole)

    # --- doctor -----------------------------------------------------------------------

    def checks(self) -> list[StoreCheck]:
        name = f"kind {self.name}"
        try:
            self.client.head_bucket(Bucket=self.bucket)
            versioned = self.versioned
        except ClientError as error:
            return [
                StoreCheck(
                    name,
                    FAIL,
                    f"bucket {self.bucket}: {_code(error)}",
                    f"create the bucket, or fix bucket under "
                    f"[{self.profile.name}.kinds.{self.name}]",
                )
            ]
        shown = (
            "versioned: the run's versions and delete markers too" if versioned else "unversioned"
        )
        return [StoreCheck(name, OK, f"bucket {self.bucket} ({shown}), keys {self.prefix}itest-…")]
