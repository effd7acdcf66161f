"""The write-ahead journal: the on-disk truth of what a worker created.

One JSON-lines file per worker of a run, ``<state>/runs/<run-id>/<worker>.jsonl``. An
``intent`` line is written *before* a create request goes out, ``created`` after it answered,
``deleted``/``failed``/``kept`` when cleanup settles it. Any process can :func:`replay` the
files of a run — including a run that was SIGKILLed between request and response — and get
back every resource that may exist. Lines are flushed to the OS at once (a dead process loses
nothing); ``fsync`` additionally survives a machine crash at a measured cost.
It owns the file format only: it never talks to the environment.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.project import STATE_FOLDER, project_root

State = Literal["pending", "created", "deleted", "failed", "kept"]
SETTLED: frozenset[str] = frozenset({"deleted", "kept"})


@dataclass
class Resource:
    """A typed descriptor any process can delete: a kind plus the ids that locate it."""

    seq: int
    kind: str
    ids: dict[str, Any]
    scope: str = ""
    state: State = "pending"
    error: str = ""
    worker: str = ""

    def describe(self) -> str:
        ids = ", ".join(f"{k}={v}" for k, v in sorted(self.ids.items()))
        return f"{self.kind}({ids})"


def default_state_dir(root: Path | str | None = None) -> Path:
    """``$HARNESS_STATE_DIR``, else ``.harness`` in the project root: ``root`` (a profile's
    ``project_root``), or the one found from the current folder — the folder of the nearest
    ``environments.toml`` (:func:`harness.project.project_root`)."""
    override = os.environ.get("HARNESS_STATE_DIR")
    if override:
        return Path(override)
    return Path(root or project_root(None, os.environ)) / STATE_FOLDER


def run_dir(state_dir: Path, run_id: str, shard: str = "") -> Path:
    """``runs/<run id>``, or ``runs/<run id>@s01`` for one CI shard: shards of one run that
    share a machine never share (or remove) each other's journals."""
    return state_dir / "runs" / (f"{run_id}@{shard}" if shard else run_id)


@dataclass
class Journal:
    path: Path
    fsync: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # pragma: no mutate start (equivalent: "UTF-8", None: the same codec on supported systems)
        self._file = self.path.open("a", encoding="utf-8")
        # pragma: no mutate end

    def append(self, op: str, seq: int, **data: Any) -> None:
        line = json.dumps({"op": op, "seq": seq, "t": round(time.time(), 3), **data})
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()


def replay(path: Path) -> list[Resource]:
    """Fold one journal file into resources, in creation order. A torn last line is ignored."""
    resources: dict[int, Resource] = {}
    worker = path.stem
    with path.open(encoding="utf-8") as lines:  # pragma: no mutate (equivalent: same codec)
        for raw in lines:
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write
            seq, op = entry.get("seq"), entry.get("op")
            if op == "intent":
                resources[seq] = Resource(
                    seq=seq,
                    kind=entry["kind"],
                    ids=dict(entry.get("ids", {})),
                    scope=entry.get("scope", ""),
                    worker=worker,
                )
            elif seq in resources:
                resource = resources[seq]
                resource.ids.update(entry.get("ids", {}))
                if op in ("created", "deleted", "failed", "kept"):
                    resource.state = op
                    resource.error = entry.get("error", "")
    return [resources[seq] for seq in sorted(resources)]


def replay_run(state_dir: Path, run_id: str) -> list[Resource]:
    """Every resource journaled by every worker of ``run_id`` on this machine."""
    found: list[Resource] = []
    for directory in sorted((state_dir / "runs").glob(f"{run_id}*")):
        for path in sorted(directory.glob("*.jsonl")):
            found.extend(replay(path))
    return found
