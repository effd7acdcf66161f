"""The errors of configuration and target, shared by every layer of the engine.

Owns the two exception types that mean "the run cannot start, and the message names the
fix": :class:`ConfigError` (exit 8) and :class:`TargetError` (exit 7). It imports nothing,
so config, the kinds, the clients and the commands all raise them without an import cycle
(``from harness.config import ConfigError`` keeps working). It must never hold logic.
"""

from __future__ import annotations


class ConfigError(Exception):
    """Bad or missing configuration; the message says what to change."""


class TargetError(ConfigError):
    """The target cannot be reached, or is not the environment the profile names (exit 7,
    where a plain :class:`ConfigError` is exit 8); the message says what to check."""
