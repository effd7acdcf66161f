"""The errors shared by every layer of the engine.

Owns the exception types that mean "the run cannot start, and the message names the fix":
:class:`ConfigError` (exit 8) and :class:`TargetError` (exit 7); and those of the ownership
rules: :class:`OwnershipError` (a delete refused), :class:`CreateRefused` and
:class:`NotCreated` (a create the ledger will not record). It imports nothing, so config, the
kinds, the ledger, the clients and the commands all raise them without an import cycle
(``from harness.config import ConfigError`` and ``from harness.cleanup.ledger import
CreateRefused`` keep working). It must never hold logic.
"""

from __future__ import annotations


class ConfigError(Exception):
    """Bad or missing configuration; the message says what to change."""


class TargetError(ConfigError):
    """The target cannot be reached, or is not the environment the profile names (exit 7,
    where a plain :class:`ConfigError` is exit 8); the message says what to check."""


class OwnershipError(Exception):
    """A delete was refused: the target does not carry this harness's namespace or run."""


class CreateRefused(Exception):
    """A create the ledger will not record: an unknown kind or a marker outside this run's
    namespace (refused before anything is journaled or sent), or an ``fn`` whose answer is
    not ids. One line naming the fix. Not an ``AssertionError``: ``eventually`` must not
    retry it."""


class NotCreated(CreateRefused):
    """Raised by a create function that knows nothing was written (a conditional put that
    found the key taken): the ledger settles the intent at once, so nothing is left for
    cleanup to try — or to refuse — later."""
