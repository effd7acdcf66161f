"""What the declared kinds of stores other than DynamoDB share: Cognito user pools
(:mod:`harness.kinds.cognito`), S3 prefixes (:mod:`harness.kinds.s3`), SQL tables
(:mod:`harness.kinds.sql`).

Owns the common base (:class:`StoreKind`: a declared kind's name and sweep order set per
instance, its ``checks`` for ``doctor`` and preflight, its stores' sizes for the residue
check's size rule), and the sweeper's paged listing (:func:`paged`) that gives every
store DynamoDB's treatment: a read budget, a checkpoint to resume from, a progress line. It
never deletes: each kind does, after the gate (:mod:`harness.safety.guards`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.kinds.base import Kind
from harness.kinds.dynamo import ScanControl, SegmentState

if TYPE_CHECKING:
    from harness.clients.aws import Aws
    from harness.config import Profile

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True)
class StoreCheck:
    """One ``doctor`` row of a store (the pool, bucket or table exists; the marker is
    indexed). A FAIL stops a run's preflight: ``unreachable`` ones as exit 7, others 8."""

    name: str
    status: str
    detail: str
    fix: str = ""
    unreachable: bool = False


class StoreKind(Kind):
    """A kind declared under ``[profile.kinds.NAME]`` with a ``type`` other than dynamodb."""

    #: The ``type`` it is declared with.
    store = ""

    def __init__(self, name: str, profile: Profile, aws: Aws, *, sweep_order: int = 50) -> None:
        super().__init__(profile, aws)
        # A declared kind's name and order are data, not a class: set per instance.
        self.__dict__["name"] = name
        self.__dict__["sweep_order"] = sweep_order

    def checks(self) -> list[StoreCheck]:
        """``doctor``'s rows for this store (reads only); preflight stops on a FAIL."""
        raise NotImplementedError

    def store_sizes(self) -> list[tuple[str, int]]:
        """(store, approximate item count) for the residue check's size rule; a kind whose
        ``find`` is cheap is never asked."""
        return []


#: One page of a listing: (the matching items, as JSON-able dicts; the next page's token or
#: None at the end; how many items the page read).
Page = tuple[list[dict[str, Any]], Any, int]


def paged(
    fetch: Callable[[Any], Page],
    *,
    store: str,
    scope: str,
    scan: ScanControl | None = None,
    total: Callable[[], int] | None = None,
) -> list[dict[str, Any]]:
    """Every item of a paginated listing (``fetch(token)``, first called with None). With a
    :class:`~harness.kinds.dynamo.ScanControl` (the sweeper's), each page is paid for in its
    read budget (items read; a capacity-unit budget counts half a unit an item), saved to its
    checkpoint under ``store`` and ``scope`` (a resumed sweep starts after the last saved
    page, with the items saved so far) and counted by its progress line (``total``: the
    store's size, when it can tell). A listing is one stream: ``segments`` does not apply."""
    control = scan or ScanControl()
    state = (
        control.checkpoint.load(store, scope, 0, 1)
        if control.checkpoint is not None
        else SegmentState()
    )
    if control.progress is not None:
        control.progress.begin(store, total() if total is not None else 0)
        if state.scanned or state.items:
            control.progress.add(state.scanned, len(state.items), resumed=True)
    found = list(state.items)
    if state.done:
        return found
    token = state.last_key["token"] if state.last_key else None
    limiter = control.limiter
    while True:
        # pragma: no mutate start (equivalent: without a limiter the start is never read)
        started = limiter.wait() if limiter is not None else 0.0
        # pragma: no mutate end
        items, token, read = fetch(token)
        control._count(read)
        if limiter is not None:
            limiter.spend(read if limiter.unit == "items" else read / 2, started)
        if control.checkpoint is not None:
            control.checkpoint.save(
                store,
                scope,
                0,
                1,
                items=items,
                last_key={"token": token} if token is not None else None,
                scanned=read,
            )
        if control.progress is not None:
            control.progress.add(read, len(items))
        found += items
        if token is None:
            if limiter is not None:
                limiter.wait()  # the last page is paid for too: the budget holds
            return found


def store_checks(kind: StoreKind) -> list[StoreCheck]:
    """``kind.checks()``, with a store that cannot be asked at all as one FAIL row (no
    credentials, an endpoint that does not answer: ``unreachable``)."""
    from botocore.exceptions import BotoCoreError, EndpointConnectionError

    from harness.errors import ConfigError, TargetError

    try:
        return kind.checks()
    except (ConfigError, TargetError) as error:
        return [
            StoreCheck(
                f"kind {kind.name}",
                FAIL,
                "cannot be checked",
                str(error),
                unreachable=isinstance(error, TargetError),
            )
        ]
    except BotoCoreError as error:
        return [
            StoreCheck(
                f"kind {kind.name}",
                FAIL,
                f"{type(error).__name__}: {error}",
                f"check aws_endpoint_url and the credentials of [{kind.profile.name}]",
                unreachable=isinstance(error, EndpointConnectionError),
            )
        ]


def preflight(kinds: Mapping[str, Kind]) -> None:
    """Before a run: every store kind's pool, bucket or table is there (reads only). The
    first FAIL stops the run with one line naming the fix: a store that does not answer as a
    TargetError (exit 7), anything else as a ConfigError (exit 8)."""
    from harness.errors import ConfigError, TargetError

    for kind in kinds.values():
        if not isinstance(kind, StoreKind):
            continue
        for row in store_checks(kind):
            if row.status == FAIL:
                error = TargetError if row.unreachable else ConfigError
                raise error(f"{row.name}: {row.detail}; {row.fix}")
