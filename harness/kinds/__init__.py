"""Resource kinds: one module per kind of thing the harness creates in an environment.

Each module defines a :class:`Kind` subclass (``user``, ``token``, ``notification`` …) that
knows how to create it, delete it (always through an
:class:`~harness.safety.guards.Owner` check and,
where the store allows, a conditional delete), and find every item carrying a namespace prefix
(for the residue check and the sweeper). :func:`load_kinds` discovers the modules of this
package, so adding a kind is adding a file here — no other engine file changes. Kinds are the
harness's adapters to the reference service's storage contract (docs/service-contract.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.cleanup.ledger import Outcome
from harness.clients.aws import Aws
from harness.config import Profile
from harness.safety.guards import KindLike, Owner


@dataclass(frozen=True)
class Found:
    """An item found in the environment by namespace: its kind, the ids its kind deletes it
    by, a one-line summary, and ``marker`` — the value that carries the namespace (an email,
    a ``HarnessNamespace`` attribute, a queue name), which the guard checks before deleting."""

    kind: str
    ids: dict[str, Any]
    summary: str
    marker: str = ""


class Kind(KindLike):
    """Base class; subclasses set ``name`` and implement ``delete`` and ``find``."""

    name: ClassVar[str] = ""

    def __init__(self, profile: Profile, aws: Aws) -> None:
        self.profile = profile
        self.aws = aws

    def delete(self, ids: Mapping[str, Any], owner: Owner) -> Outcome:
        raise NotImplementedError

    def find(self, prefix: str) -> list[Found]:
        """Every item whose namespace marker starts with ``prefix`` (a run id, or ``itest-``)."""
        raise NotImplementedError

    #: Sweep order: lower first. Users go before what derives from them; leases go last.
    sweep_order: ClassVar[int] = 50

    def delete_many(self, ids: list[dict[str, Any]], owner: Owner) -> int:
        """Delete many items already proven ours by the guard; returns how many were deleted.
        Kinds backed by a table override this with batched writes."""
        return sum(self.delete(one, owner) == "deleted" for one in ids)


def kind_classes() -> dict[str, type[Kind]]:
    classes: dict[str, type[Kind]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Kind) and value.name:
                classes[value.name] = value
    return classes


def load_kinds(profile: Profile, aws: Aws) -> dict[str, Kind]:
    return {name: cls(profile, aws) for name, cls in kind_classes().items()}
