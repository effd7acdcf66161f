"""Resource kinds: one module per kind of thing the harness creates in an environment.

Each module defines a :class:`Kind` subclass (``user``, ``token``, ``notification`` …) that
knows how to create it, delete it (always through an :class:`~harness.guards.Owner` check and,
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

from harness.aws import Aws
from harness.config import Profile
from harness.guards import KindLike, Owner
from harness.ledger import Outcome


@dataclass(frozen=True)
class Found:
    """An item found in the environment by namespace: its kind, ids and a one-line summary."""

    kind: str
    ids: dict[str, Any]
    summary: str


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
