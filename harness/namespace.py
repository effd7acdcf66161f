"""Run namespace: the one id every run stamps on everything it creates.

A run id looks like ``itest-20261127t172503-k3f9``: a constant prefix (so a sweeper's
pattern can never drift), the UTC start time to the second (sortable, and the sweeper reads
a leak's age from it) and four random base-36 characters (two runs started in the same second
do not collide). A *namespace* adds a worker part — ``gw1`` under xdist, ``main`` without it,
``s2gw1`` for shard 2 — so two workers of one run never collide, while the run id still names
the whole run for the residue check.

It also owns the one rule of *belonging* (:func:`belongs`): which items a resource takes with
it when it is cleaned — its own, never a look-alike's (``…-ann`` is not ``…-ann1``). Every
path that cleans or keeps what belongs to a resource (the cascade of the ownership gate,
declared kinds' ``related``, the residue check, recovery, ``--keep-on-failure``) asks it.
Everything here is pure: no I/O, no clock unless asked; it never decides *whose* an item is
(the gate does, :mod:`harness.safety.guards`).
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime

PREFIX = "itest"
#: Reserved test domain: the ``.test`` TLD never resolves, so no mail is ever delivered.
TEST_DOMAIN = "env-harness.example.test"

_ALPHABET = string.ascii_lowercase + string.digits
#: The characters of a name's label (``Namespace.name``) and of a worker part: after a
#: name, one of these makes a longer name — a look-alike, not a part of it.
_NAME_CHARACTERS = frozenset(_ALPHABET)
_LABEL_RE = re.compile(r"[a-z0-9]+")
_TIME_FORMAT = "%Y%m%dt%H%M%S"
_RUN = rf"{PREFIX}-(?P<time>\d{{8}}t\d{{6}})-(?P<suffix>[a-z0-9]{{4}})"
_WORKER = r"(?P<worker>[a-z0-9]{1,24})"
RUN_ID_RE = re.compile(rf"^{_RUN}$")
NAMESPACE_RE = re.compile(rf"^{_RUN}-{_WORKER}$")
#: Finds a namespace inside a larger string (an email, a queue name, an attribute).
NAMESPACE_IN_TEXT_RE = re.compile(rf"{_RUN}-{_WORKER}")
#: A harness-made email: ``<namespace>-<label>@env-harness.example.test``.
EMAIL_RE = re.compile(rf"^{_RUN}-{_WORKER}-(?P<label>[a-z0-9]{{1,32}})@{re.escape(TEST_DOMAIN)}$")


def _random_suffix(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True, order=True)
class RunId:
    """One run of the harness, shared by all its workers and shards."""

    started: datetime
    suffix: str

    @classmethod
    def generate(cls, now: datetime | None = None) -> RunId:
        # pragma: no mutate start (equivalent: now(None) -> UTC is the same instant)
        moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        # pragma: no mutate end
        return cls(started=moment, suffix=_random_suffix(4))

    @classmethod
    def parse(cls, text: str) -> RunId:
        match = RUN_ID_RE.match(text)
        if not match:
            raise ValueError(
                f"{text!r} is not a run id (expected like 'itest-20261127t172503-k3f9')"
            )
        return cls._from_match(match)

    @classmethod
    def _from_match(cls, match: re.Match[str]) -> RunId:
        started = datetime.strptime(match["time"], _TIME_FORMAT).replace(tzinfo=UTC)
        return cls(started=started, suffix=match["suffix"])

    def __str__(self) -> str:
        return f"{PREFIX}-{self.started.strftime(_TIME_FORMAT)}-{self.suffix}"

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.started).total_seconds()


def shard_part(shard: str | None) -> str:
    """``""`` or ``s01``..``s99``: fixed width, so one shard's prefix never matches another's."""
    if not shard:
        return ""
    if not shard.isdigit() or not 0 < int(shard) < 100:
        raise ValueError(f"HARNESS_SHARD must be a number from 1 to 99, not {shard!r}")
    return f"s{int(shard):02d}"


def worker_part(xdist_worker: str | None = None, shard: str | None = None) -> str:
    """``gw1`` / ``main``, prefixed by ``s01`` etc. when the run is split across CI shards."""
    # pragma: no mutate start (equivalent: "MAIN".lower() is "main")
    part = shard_part(shard) + (xdist_worker or "main").lower()
    # pragma: no mutate end
    if not re.fullmatch(r"[a-z0-9]{1,24}", part):
        raise ValueError(f"worker part {part!r} must be 1-24 lowercase letters or digits")
    return part


@dataclass(frozen=True)
class Namespace:
    """A run id plus the worker part: the prefix of every name this worker creates."""

    run: RunId
    worker: str

    @classmethod
    def parse(cls, text: str) -> Namespace:
        match = NAMESPACE_RE.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a namespace (expected like 'itest-…-k3f9-gw1')")
        return cls(run=RunId._from_match(match), worker=match["worker"])

    def __str__(self) -> str:
        return f"{self.run}-{self.worker}"

    def name(self, label: str | None = None) -> str:
        """A unique, namespaced name safe for keys, queue names and email local parts:
        ``<namespace>-<label>``, the label lowercase letters and digits (random when not
        given) — so nothing but another name can continue a name with one of those."""
        if label and not _LABEL_RE.fullmatch(label):
            raise ValueError(f"a name's label is lowercase letters and digits, not {label!r}")
        return f"{self}-{label or _random_suffix(6)}"

    def email(self, label: str | None = None) -> str:
        return f"{self.name(label)}@{TEST_DOMAIN}"


def parse_email(email: str) -> Namespace | None:
    """The namespace of a harness-made email, or None for any other address."""
    match = EMAIL_RE.match(email.strip().lower())
    if not match:
        return None
    return Namespace(run=RunId._from_match(match), worker=match["worker"])


def find_namespace(text: str) -> Namespace | None:
    """The first namespace embedded in ``text`` (a queue name, an attribute), if any."""
    match = NAMESPACE_IN_TEXT_RE.search(text)
    if not match:
        return None
    return Namespace(run=RunId._from_match(match), worker=match["worker"])


def belongs(marker: str | None, owner: str | None) -> bool:
    """Whether an item whose marker is ``marker`` belongs to the resource whose marker is
    ``owner`` (and so is cleaned, or kept, with it).

    It does when the two are equal, or when ``marker`` continues ``owner`` after a
    *separator*: a character that no namespace name can hold at that position. A name
    (``<namespace>-<label>``, :meth:`Namespace.name`) continues only with more label
    characters, ``[a-z0-9]``: ``…-ann-session`` and ``…-ann@env-harness.example.test``
    belong to ``…-ann``; ``…-ann1`` (another name) does not. After a namespace or a run id a
    ``-`` starts a name in it (or a worker of it), so ``…-gw0-ann`` is not a namespace's own.
    Markers compare without case (emails do; names are lower-case, so two never differ by
    case alone): ``…-Ann`` is ``…-ann``'s, ``…-Ann1`` is not. No marker belongs to an empty
    one, and an empty marker belongs to nothing."""
    if not marker or not owner:
        return False
    item, resource = marker.lower(), owner.lower()
    if item == resource:
        return True
    if not item.startswith(resource):
        return False
    follows = item[len(resource)]
    if follows in _NAME_CHARACTERS:
        return False
    return not (follows == "-" and (NAMESPACE_RE.match(resource) or RUN_ID_RE.match(resource)))
