"""The history store: where every run appends its records, and where the last runs are read.

Owns the two stores and choosing between them:

- :class:`SqliteStore` — the embedded default, ``.harness/history.sqlite`` (the standard
  library's ``sqlite3`` in WAL mode). Only a run's controller writes, once, in one
  transaction, at the end of the run (xdist workers never touch it); concurrent runs on one
  machine take turns on SQLite's write lock (a busy timeout, never an error) and readers
  never wait for a writer.
- :class:`S3Store` — for CI runners that start empty: ``s3://bucket/prefix``. One immutable
  object per run and shard, ``<prefix>/<environment>/runs/<inverted time>-<run id>-<shard>.json``
  (the inverted start time lists the newest first, so reading the last N runs lists and reads
  about N objects), so concurrent shards and runners never write the same key. Its client is
  the harness's own: it may put objects under the named prefix and read, nothing else (a
  botocore hook refuses every other call) — also on a protected profile, whose target's
  tables it never touches.

:func:`open_store` reads the spec (``--history``, else the profile's ``history``, else the
SQLite default); any failure to reach a store is a :class:`HistoryUnavailable` with a
one-line reason: callers warn, a run never fails for it.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from harness.history.records import RunRecord, TestRecord

#: How many earlier runs a run reads (classification, durations for shards, trends).
DEFAULT_RUNS = 100
SQLITE_NAME = "history.sqlite"
#: How long a writer waits for another run's write to finish (SQLite's busy timeout).
BUSY_TIMEOUT_S = 30.0


class HistoryUnavailable(Exception):
    """The store cannot be reached or read; the message is one line naming it and why."""


class HistoryConfigError(ValueError):
    """A ``history`` spec that names no store; the message names the fix."""


class Store(Protocol):
    description: str

    def append(self, run: RunRecord) -> None: ...

    def runs(
        self, environment: str, last: int = DEFAULT_RUNS, exclude_run: str = ""
    ) -> list[RunRecord]: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT NOT NULL, shard TEXT NOT NULL, profile TEXT, environment TEXT,
    started_at REAL, duration_s REAL, outcome TEXT, exit_status INTEGER,
    service_version TEXT, git_commit TEXT, tests TEXT, resources TEXT, leaks INTEGER,
    latency TEXT, events TEXT,
    PRIMARY KEY (run_id, shard)
);
CREATE TABLE IF NOT EXISTS tests (
    run_id TEXT NOT NULL, shard TEXT NOT NULL, nodeid TEXT NOT NULL, outcome TEXT,
    attempts INTEGER, duration_s REAL, classification TEXT, quarantined INTEGER,
    profile TEXT, environment TEXT, started_at REAL, service_version TEXT, git_commit TEXT,
    PRIMARY KEY (run_id, shard, nodeid)
);
CREATE INDEX IF NOT EXISTS runs_by_environment ON runs (environment, started_at);
"""


class SqliteStore:
    """``.harness/history.sqlite`` (or any path): WAL, one transaction per run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.description = f"sqlite:{self.path}"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        except (OSError, sqlite3.Error) as error:
            raise HistoryUnavailable(f"{self.description}: {error}") from None
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
            yield connection
        except sqlite3.Error as error:
            raise HistoryUnavailable(f"{self.description}: {error}") from None
        finally:
            connection.close()

    def append(self, run: RunRecord) -> None:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.run_id, run.shard, run.profile, run.environment, run.started_at,
                    run.duration_s, run.outcome, run.exit_status, run.service_version,
                    run.commit, json.dumps(run.tests), json.dumps(run.resources), run.leaks,
                    json.dumps(run.latency), json.dumps(run.events),
                ),
            )  # fmt: skip
            db.execute("DELETE FROM tests WHERE run_id = ? AND shard = ?", (run.run_id, run.shard))
            db.executemany(
                "INSERT INTO tests VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        run.run_id, run.shard, t.nodeid, t.outcome, t.attempts, t.duration_s,
                        t.classification, int(t.quarantined), run.profile, run.environment,
                        run.started_at, run.service_version, run.commit,
                    )
                    for t in run.results
                ],
            )  # fmt: skip
            db.commit()

    def runs(
        self, environment: str, last: int = DEFAULT_RUNS, exclude_run: str = ""
    ) -> list[RunRecord]:
        """The last ``last`` runs of ``environment`` (every shard of each), newest first."""
        if not self.path.exists():
            return []
        with self._connect() as db:
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT run_id FROM runs WHERE environment = ? AND run_id != ? "
                    "GROUP BY run_id ORDER BY MAX(started_at) DESC LIMIT ?",
                    (environment, exclude_run, last),
                )
            ]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            records: dict[tuple[str, str], RunRecord] = {}
            for row in db.execute(
                f"SELECT * FROM runs WHERE run_id IN ({marks}) AND environment = ?",
                (*ids, environment),
            ):
                record = RunRecord(
                    run_id=row[0], shard=row[1], profile=row[2] or "", environment=row[3] or "",
                    started_at=row[4] or 0.0, duration_s=row[5] or 0.0, outcome=row[6] or "",
                    exit_status=row[7], service_version=row[8] or "", commit=row[9] or "",
                    tests=json.loads(row[10] or "{}"), resources=json.loads(row[11] or "{}"),
                    leaks=row[12] or 0, latency=json.loads(row[13] or "[]"),
                    events=json.loads(row[14] or "{}"),
                )  # fmt: skip
                records[(record.run_id, record.shard)] = record
            for row in db.execute(
                f"SELECT run_id, shard, nodeid, outcome, attempts, duration_s, classification, "
                f"quarantined FROM tests WHERE run_id IN ({marks}) AND environment = ?",
                (*ids, environment),
            ):
                owner = records.get((row[0], row[1]))
                if owner is not None:
                    owner.results.append(
                        TestRecord(row[2], row[3], row[4], row[5], row[6] or "", bool(row[7]))
                    )
        return sorted(records.values(), key=lambda r: (-r.started_at, r.shard))


#: What an environment's name may put in an S3 key as it is.
_KEY_SAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Keys sort newest first: 10**10 minus the start time in seconds, ten digits.
_INVERT = 10**10


class S3Store:
    """``s3://bucket/prefix``: one immutable JSON object per run and shard."""

    def __init__(self, url: str, client: Any) -> None:
        parsed = urlparse(url)
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.description = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = client
        guard_history_client(client, self.bucket, self.prefix)

    def _folder(self, environment: str) -> str:
        name = _KEY_SAFE.sub("_", environment) or "_"
        return "/".join(p for p in (self.prefix, name, "runs") if p) + "/"

    def key(self, run: RunRecord) -> str:
        inverted = _INVERT - int(run.started_at)
        name = f"{inverted:010d}-{run.run_id}-{run.shard or 'all'}.json"
        return self._folder(run.environment) + name

    def append(self, run: RunRecord) -> None:
        body = json.dumps(run.as_dict(), separators=(",", ":")).encode()
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self.key(run), Body=body, ContentType="application/json"
            )
        except Exception as error:
            raise HistoryUnavailable(f"{self.description}: {_one_line(error)}") from None

    def runs(
        self, environment: str, last: int = DEFAULT_RUNS, exclude_run: str = ""
    ) -> list[RunRecord]:
        folder = self._folder(environment)
        keys: list[str] = []
        seen: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            done = False
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    run_id = _run_of(item["Key"][len(folder) :])
                    if not run_id or run_id == exclude_run:
                        continue
                    if run_id not in seen:
                        if len(seen) == last:
                            done = True
                            break
                        seen.append(run_id)
                    keys.append(item["Key"])
                if done:
                    break
            with ThreadPoolExecutor(max_workers=8) as pool:
                bodies = list(pool.map(self._get, keys))
        except HistoryUnavailable:
            raise
        except Exception as error:
            raise HistoryUnavailable(f"{self.description}: {_one_line(error)}") from None
        records = [RunRecord.from_dict(json.loads(body)) for body in bodies]
        return sorted(records, key=lambda r: (-r.started_at, r.shard))

    def _get(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


def _run_of(name: str) -> str:
    """The run id in ``<inverted>-<run id>-<shard>.json``."""
    parts = name.removesuffix(".json").split("-")
    # itest-<time>-<suffix>: three parts after the inverted time; the shard is the last
    return "-".join(parts[1:4]) if len(parts) >= 5 else ""


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"


#: The S3 calls a history client makes: these reads, and PutObject under its prefix.
_HISTORY_READS = frozenset({"ListObjectsV2", "GetObject", "HeadObject", "HeadBucket"})


def guard_history_client(client: Any, bucket: str, prefix: str) -> None:
    """The history client's one write is PutObject into ``bucket`` under ``prefix``:
    anything else (a delete, another bucket) is refused before it is sent."""
    from harness.safety.protect import ProtectedTargetError

    def check(params: dict[str, Any], model: Any, **_: Any) -> None:
        name = model.name
        if name in _HISTORY_READS and params.get("Bucket") == bucket:
            return
        key = str(params.get("Key", ""))
        if name == "PutObject" and params.get("Bucket") == bucket and key.startswith(prefix):
            return
        raise ProtectedTargetError(
            f"history store s3://{bucket}/{prefix}: {name} refused — the history client only "
            f"reads and puts run records under its own prefix"
        )

    client.meta.events.register("provide-client-params.s3.*", check, "harness-history-guard")


def parse_spec(spec: str) -> str:
    """``s3://bucket/prefix`` or a path; anything else s3-like is refused in one line."""
    text = spec.strip()
    if text.startswith("s3:"):
        parsed = urlparse(text)
        if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
            raise HistoryConfigError(
                f"history {spec!r}: an S3 store is s3://BUCKET/PREFIX (a prefix of its own, "
                f"e.g. s3://ci-artifacts/env-harness-history)"
            )
    if not text:
        raise HistoryConfigError("history: give s3://BUCKET/PREFIX or a path to an SQLite file")
    return text


def open_store(spec: str, state_dir: Path, aws: Any = None, base: Path | None = None) -> Store:
    """The store ``spec`` names ("" = the default SQLite file in ``state_dir``); ``aws``
    (an :class:`~harness.clients.aws.Aws` of the profile) builds the S3 client; a relative
    path is taken from ``base``."""
    if not spec:
        return SqliteStore(state_dir / SQLITE_NAME)
    text = parse_spec(spec)
    if text.startswith("s3://"):
        if aws is None:
            raise HistoryUnavailable(f"{text}: no AWS profile to reach it")
        try:
            client = history_s3_client(aws)
        except Exception as error:
            raise HistoryUnavailable(f"{text}: {_one_line(error)}") from None
        return S3Store(text, client)
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return SqliteStore(path)


def history_s3_client(aws: Any) -> Any:
    """An S3 client of the profile's credentials and endpoint that is not write-guarded by
    the protected profile's rule (the history store is the harness's own, named by the
    profile; :func:`guard_history_client` limits it to its prefix instead)."""
    from harness.clients.aws import RETRY_CONFIG, Aws

    own = Aws(aws.profile, RETRY_CONFIG, read_only=False)
    kwargs: dict[str, Any] = {"config": RETRY_CONFIG}
    if own.endpoint_url:
        kwargs["endpoint_url"] = own.endpoint_url
    return own.session.client("s3", **kwargs)
