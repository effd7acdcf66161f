"""The declared S3 kind (harness/kinds/s3.py) against S3's own semantics — moto in-process,
the emulator the sandbox serves, through the harness's real boto3 clients: an object is the
kind's only when its key is ``<prefix><namespace>…``; finding is a prefix listing (every
version and delete marker on a versioned bucket: the run made those keys); what belongs to a
resource (``…-ann/photo.png``) and what is a look-alike (``…-ann1/…``); DeleteObjects in
batches of 1,000 of keys checked again right before.

On the old code none of this exists: ``type = "s3"`` is refused as an unknown field, and a
versioned bucket keeps every version a test's DELETE left behind."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from moto import mock_aws

from harness.cleanup.ledger import OwnershipError
from harness.clients.aws import Aws
from harness.config import Profile
from harness.kinds.dynamo import Checkpoint, ScanControl
from harness.kinds.registry import declared_kind
from harness.kinds.s3 import S3Kind
from harness.kinds.stores import FAIL, OK, StoreCheck
from harness.safety.guards import Owner, guarded_batch_delete
from harness.safety.protect import ProtectedTargetError
from tests.unit.stubs import ns

NS = str(ns(1, "aaaa"))
BUCKET = "uploads"


class Bucket:
    def __init__(self, aws: Aws, versioned: bool = False) -> None:
        self.client = aws.s3
        self.client.create_bucket(Bucket=BUCKET)
        if versioned:
            self.client.put_bucket_versioning(
                Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}
            )
        self.deletes: list[int] = []
        self.client.meta.events.register(
            "provide-client-params.s3.DeleteObjects",
            lambda params, **_: self.deletes.append(len(params["Delete"]["Objects"])),
        )

    def put(self, *keys: str) -> None:
        for key in keys:
            self.client.put_object(Bucket=BUCKET, Key=key, Body=b"x")

    def keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def versions(self) -> list[tuple[str, bool]]:
        pages = self.client.get_paginator("list_object_versions").paginate(Bucket=BUCKET)
        return sorted(
            (v["Key"], kind == "DeleteMarkers")
            for page in pages
            for kind in ("Versions", "DeleteMarkers")
            for v in page.get(kind, [])
        )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    with mock_aws():
        yield Aws(Profile(name="t", aws_region="us-east-1", protected=False))


def kind_of(aws: Aws, prefix: str = "avatars/", **extra: Any) -> S3Kind:
    spec = {"type": "s3", "bucket": BUCKET, "marker": "key", "prefix": prefix, **extra}
    made = declared_kind("upload", spec, aws.profile, aws)
    assert isinstance(made, S3Kind)
    return made


def test_declared_with_its_fields(aws: Aws) -> None:
    kind = kind_of(aws, sweep_order=9)
    assert (kind.name, kind.sweep_order, kind.bucket, kind.prefix) == (
        "upload",
        9,
        BUCKET,
        "avatars/",
    )
    assert kind.find_is_cheap and kind.related_by_key and kind.store == "s3"
    assert kind_of(aws, prefix="").sweep_order == 50


def test_the_marker_is_the_key_after_the_prefix_when_a_namespace_starts_it(aws: Aws) -> None:
    kind = kind_of(aws)
    assert kind.marker({"key": f"avatars/{NS}-ann/p.png"}) == f"{NS}-ann/p.png"
    assert kind.marker({"key": f"backup/{NS}-ann/p.png"}) is None  # outside the prefix
    assert kind.marker({"key": f"avatars/x-{NS}-ann"}) is None  # the namespace is not first
    assert kind.marker({"key": "avatars/alice.png"}) is None
    assert kind.marker({}) is None
    assert kind_of(aws, prefix="").marker({"key": f"{NS}-ann"}) == f"{NS}-ann"
    # a key outside the prefix is never read past the prefix's length, even when what
    # follows that many characters starts with a namespace
    assert kind.marker({"key": f"elsewhr/{NS}-ann/p.png"}) is None


def test_a_declaration_without_a_prefix_has_the_empty_one(aws: Aws) -> None:
    spec = {"type": "s3", "bucket": BUCKET, "marker": "key"}
    made = declared_kind("upload", spec, aws.profile, aws)
    assert isinstance(made, S3Kind) and made.prefix == ""
    assert made.marker({"key": f"{NS}-ann/p.png"}) == f"{NS}-ann/p.png"


def test_find_lists_the_prefix_and_pages_past_1000(aws: Aws) -> None:
    bucket = Bucket(aws)
    keys = [f"avatars/{NS}-u{i:04}" for i in range(1005)]
    bucket.put(*keys, f"avatars/{ns(2, 'bbbb')!s}-x", "avatars/alice.png", f"other/{NS}-y")
    kind = kind_of(aws)
    found = kind.find(f"{NS}-")
    assert sorted(f.ids["key"] for f in found) == keys
    first = found[0]
    assert first.ids == {"key": keys[0]} and first.marker == f"{NS}-u0000"
    assert first.summary == f"upload object s3://{BUCKET}/{keys[0]}"
    assert first.kind == "upload"


def test_related_keeps_what_belongs_never_a_look_alike(aws: Aws) -> None:
    bucket = Bucket(aws)
    bucket.put(*(f"avatars/{NS}-{n}" for n in ("ann", "ann/p.png", "ann-2/q", "ann1/p.png")))
    related = kind_of(aws).related(f"{NS}-ann")
    assert sorted(f.ids["key"] for f in related) == [
        f"avatars/{NS}-ann",
        f"avatars/{NS}-ann-2/q",
        f"avatars/{NS}-ann/p.png",
    ]


def test_exists_delete_and_absent_on_an_unversioned_bucket(aws: Aws) -> None:
    bucket = Bucket(aws)
    bucket.put(f"avatars/{NS}-ann/p.png", "avatars/alice.png")
    kind = kind_of(aws)
    assert not kind.versioned
    there = kind.exists({"key": f"avatars/{NS}-ann/p.png"})
    assert there is not None and there.marker == f"{NS}-ann/p.png"
    assert kind.exists({"key": f"avatars/{NS}-bob"}) is None
    assert kind.delete({"key": f"avatars/{NS}-ann/p.png"}) == "deleted"
    assert kind.delete({"key": f"avatars/{NS}-ann/p.png"}) == "absent"
    assert bucket.keys() == ["avatars/alice.png"]
    with pytest.raises(OwnershipError, match="does not carry a harness namespace after 'avatars/'"):
        kind.delete({"key": "avatars/alice.png"})
    assert bucket.keys() == ["avatars/alice.png"]


def test_a_versioned_bucket_gives_up_every_version_and_delete_marker(aws: Aws) -> None:
    bucket = Bucket(aws, versioned=True)
    key = f"avatars/{NS}-ann/p.png"
    bucket.put(key, key, "avatars/alice.png")
    bucket.client.delete_object(Bucket=BUCKET, Key=key)  # a service's DELETE: a marker
    bucket.put(f"avatars/{NS}-ann1/p.png")
    kind = kind_of(aws)
    assert kind.versioned
    found = kind.find(f"{NS}-ann/")
    assert sorted(f.summary.split(" ")[1] for f in found) == ["delete", "version", "version"]
    assert all(set(f.ids) == {"key", "version_id"} for f in found)
    there = kind.exists({"key": key})
    assert there is not None and there.ids["key"] == key
    one = found[0].ids
    assert kind.exists(one) is not None
    assert kind.exists({"key": key, "version_id": "nope"}) is None
    assert kind.delete({"key": key}) == "deleted"
    assert kind.delete({"key": key}) == "absent"
    assert kind.exists({"key": key}) is None
    assert bucket.versions() == [("avatars/alice.png", False), (f"avatars/{NS}-ann1/p.png", False)]


def test_delete_many_sends_batches_of_1000_checked_keys(aws: Aws) -> None:
    bucket = Bucket(aws)
    keys = [f"avatars/{NS}-u{i:04}" for i in range(1500)]
    bucket.put(*keys, "avatars/alice.png")
    kind = kind_of(aws)
    ids = [{"key": k} for k in keys]
    assert kind.delete_many(ids + ids[:3]) == 1500
    assert bucket.deletes == [1000, 500]
    assert bucket.keys() == ["avatars/alice.png"]
    with pytest.raises(OwnershipError):
        kind.delete_many([{"key": "avatars/alice.png"}])
    assert bucket.keys() == ["avatars/alice.png"] and bucket.deletes == [1000, 500]


def test_delete_many_on_a_versioned_bucket(aws: Aws) -> None:
    bucket = Bucket(aws, versioned=True)
    bucket.put(f"avatars/{NS}-a", f"avatars/{NS}-a", f"avatars/{NS}-b", "avatars/alice.png")
    kind = kind_of(aws)
    versions = [f.ids for f in kind.find(f"{NS}-a")]
    assert len(versions) == 2
    assert kind.delete_many([*versions, {"key": f"avatars/{NS}-b"}]) == 3
    assert bucket.versions() == [("avatars/alice.png", False)]


def test_the_gate_and_a_sweep_with_a_checkpoint(aws: Aws, tmp_path: Any) -> None:
    bucket = Bucket(aws)
    bucket.put(f"avatars/{NS}-ann", "avatars/alice.png")
    kind = kind_of(aws)
    control = ScanControl(checkpoint=Checkpoint(tmp_path, "t"))
    mine = kind.find("itest-", scan=control)
    assert [f.ids["key"] for f in mine] == [f"avatars/{NS}-ann"] and control.calls == 1
    foreign = kind._found("avatars/alice.png")
    with pytest.raises(OwnershipError):
        guarded_batch_delete({"upload": kind}, Owner(run=None), [*mine, foreign])
    assert bucket.keys() == sorted([f"avatars/{NS}-ann", "avatars/alice.png"])
    assert guarded_batch_delete({"upload": kind}, Owner(run=None), mine) == {"upload": 1}
    assert bucket.keys() == ["avatars/alice.png"]


def test_delete_objects_errors_are_raised(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    kind = kind_of(aws)
    answer = {"Errors": [{"Key": "k", "Code": "AccessDenied", "Message": "no"}]}
    monkeypatch.setattr(kind.aws.s3, "delete_objects", lambda **_: answer)
    with pytest.raises(RuntimeError) as caught:
        kind._delete_objects([{"Key": "k"}])
    assert str(caught.value) == (
        f"S3 refused to delete 1 object(s) of s3://{BUCKET}, e.g. k: AccessDenied no"
    )
    bare = {"Errors": [{"Key": "k", "Code": "AccessDenied"}]}
    monkeypatch.setattr(kind.aws.s3, "delete_objects", lambda **_: bare)
    with pytest.raises(RuntimeError, match=r"e\.g\. k: AccessDenied$"):
        kind._delete_objects([{"Key": "k"}])
    missing = {"Errors": [{"Key": "k", "Code": "NoSuchKey"}]}
    monkeypatch.setattr(kind.aws.s3, "delete_objects", lambda **_: missing)
    assert kind._delete_objects([{"Key": "k"}]) == 1


def test_doctor_rows(aws: Aws) -> None:
    Bucket(aws, versioned=True)
    (row,) = kind_of(aws).checks()
    assert row.status == OK
    assert row.detail == (
        f"bucket {BUCKET} (versioned: the run's versions and delete markers too), keys "
        "avatars/itest-…"
    )
    plain = kind_of(aws)
    plain.bucket = "plain"
    plain.aws.s3.create_bucket(Bucket="plain")
    assert plain.checks() == [
        StoreCheck("kind upload", OK, "bucket plain (unversioned), keys avatars/itest-…")
    ]
    missing = kind_of(aws)
    missing.bucket = "nothere"
    assert missing.checks() == [
        StoreCheck(
            "kind upload",
            FAIL,
            "bucket nothere: 404",
            "create the bucket, or fix bucket under [t.kinds.upload]",
        )
    ]


def test_a_protected_profiles_client_lists_and_refuses_delete_objects(aws: Aws) -> None:
    bucket = Bucket(aws)
    bucket.put(f"avatars/{NS}-ann")
    guarded = Aws(Profile(name="prod", aws_region="us-east-1", protected=True))
    spec = {"type": "s3", "bucket": BUCKET, "marker": "key", "prefix": "avatars/"}
    kind = S3Kind.from_spec("upload", spec, guarded.profile, guarded)
    assert [f.marker for f in kind.find(f"{NS}-")] == [f"{NS}-ann"]
    with pytest.raises(ProtectedTargetError, match="AWS s3 DeleteObjects refused"):
        kind.delete_many([{"key": f"avatars/{NS}-ann"}])
    assert bucket.keys() == [f"avatars/{NS}-ann"]


def test_a_runs_recorded_keys_are_looked_up_with_one_listing(aws: Aws) -> None:
    bucket = Bucket(aws, versioned=True)
    listings: list[str] = []
    bucket.client.meta.events.register(
        "provide-client-params.s3.ListObjectVersions",
        lambda params, **_: listings.append(params["Prefix"]),
    )
    bucket.put(f"avatars/{NS}-a", f"avatars/{NS}-b/x", "avatars/alice.png")
    kind = kind_of(aws)
    asked: list[Mapping[str, Any]] = [
        {"key": f"avatars/{NS}-a"},
        {"key": f"avatars/{NS}-b/x"},
        {"key": f"avatars/{NS}-c"},
    ]
    found = kind.exists_many(asked)
    assert sorted(f.ids["key"] for f in found) == [f"avatars/{NS}-a", f"avatars/{NS}-b/x"]
    assert listings == [f"avatars/{NS}-"]
    version = found[0].ids["version_id"]
    one = kind.exists_many([{"key": f.ids["key"], "version_id": version} for f in found])
    assert [f.ids["version_id"] for f in one] == [version]
    listings.clear()
    mixed = kind.exists_many([{"key": f"avatars/{NS}-a"}, {"key": "avatars/alice.png"}])
    assert [f.ids["key"] for f in mixed] == [f"avatars/{NS}-a", "avatars/alice.png"]
    assert len(listings) == 2  # no namespace in common: one by one
    listings.clear()
    assert [f.ids["key"] for f in kind.exists_many([{"key": f"avatars/{NS}-a"}])] == [
        f"avatars/{NS}-a"
    ]
    assert listings == [f"{'avatars/'}{NS}-a"]


def test_an_empty_listing_finds_nothing(aws: Aws) -> None:
    bucket = Bucket(aws)
    assert kind_of(aws).find(f"{NS}-") == []
    bucket.client.put_bucket_versioning(
        Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    assert kind_of(aws).find(f"{NS}-") == []


def test_a_versioned_listing_pages_past_1000(aws: Aws) -> None:
    bucket = Bucket(aws, versioned=True)
    keys = [f"avatars/{NS}-u{i:04}" for i in range(1003)]
    bucket.put(*keys)
    assert sorted(f.ids["key"] for f in kind_of(aws).find(f"{NS}-")) == keys


def test_one_named_version_is_deleted_alone(aws: Aws) -> None:
    bucket = Bucket(aws, versioned=True)
    key = f"avatars/{NS}-ann"
    bucket.put(key, key)
    kind = kind_of(aws)
    first, second = kind.find(f"{NS}-ann")
    assert kind.delete(first.ids) == "deleted"
    assert [f.ids for f in kind.find(f"{NS}-ann")] == [second.ids]
    assert kind.delete(first.ids) == "absent"


def test_two_recorded_keys_are_one_listing_and_each_found_once(aws: Aws) -> None:
    bucket = Bucket(aws, versioned=True)
    listings: list[str] = []
    bucket.client.meta.events.register(
        "provide-client-params.s3.ListObjectVersions",
        lambda params, **_: listings.append(params["Prefix"]),
    )
    bucket.put(f"avatars/{NS}-a", f"avatars/{NS}-a", f"avatars/{NS}-b")
    found = kind_of(aws).exists_many([{"key": f"avatars/{NS}-a"}, {"key": f"avatars/{NS}-b"}])
    assert sorted(f.ids["key"] for f in found) == [f"avatars/{NS}-a", f"avatars/{NS}-b"]
    assert listings == [f"avatars/{NS}-"]


def test_what_is_found_says_what_it_is(aws: Aws) -> None:
    bucket = Bucket(aws)
    bucket.put(f"avatars/{NS}-ann/p.png")
    kind = kind_of(aws)
    there = kind.exists({"key": f"avatars/{NS}-ann/p.png"})
    assert there is not None
    assert there.summary == f"upload object s3://{BUCKET}/avatars/{NS}-ann/p.png"
    foreign = kind._found("avatars/alice.png")
    assert foreign.marker == "" and foreign.ids == {"key": "avatars/alice.png"}
    bucket.client.put_bucket_versioning(
        Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    bucket.put(f"avatars/{NS}-bob")
    (version,) = kind_of(aws).find(f"{NS}-bob")
    assert version.summary == (
        f"upload version s3://{BUCKET}/avatars/{NS}-bob version {version.ids['version_id']}"
    )
    with pytest.raises(OwnershipError) as caught:
        kind.delete({"key": "avatars/alice.png"})
    assert str(caught.value) == (
        f"refusing to delete s3://{BUCKET}/avatars/alice.png: its key does not carry a harness "
        "namespace after 'avatars/'"
    )


def test_versions_go_in_one_batch_and_a_whole_key_counts_once(aws: Aws) -> None:
    bucket = Bucket(aws, versioned=True)
    bucket.put(f"avatars/{NS}-a", f"avatars/{NS}-a", f"avatars/{NS}-b", f"avatars/{NS}-b")
    kind = kind_of(aws)
    versions = [f.ids for f in kind.find(f"{NS}-a")]
    assert kind.delete_many(versions) == 2 and bucket.deletes == [2]
    assert kind.delete_many([{"key": f"avatars/{NS}-b"}]) == 1
    assert bucket.versions() == []
