"""Option value types shared by the ``harness`` command line and the pytest plugin.

Owns checking every option's value when the command line is parsed, with an error that says
what a good value looks like; nothing is validated later, half-way into a run.
"""

from __future__ import annotations

import argparse

from harness.config import parse_duration

#: The seed is a 32-bit number (a report's ``seed`` replays that run's data).
MAX_SEED = 2**32 - 1


def workers(text: str) -> str:
    """``-n``: a number of workers ≥ 1, or ``auto`` (one per CPU)."""
    if text in ("auto", "logical"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of workers: give 1 or more, or auto"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{value} workers: give 1 or more, or auto (omit -n to run in one process)"
        )
    return str(value)


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a seed: give a whole number from 0 to {MAX_SEED} (a report's seed)"
        ) from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range: give 0 to {MAX_SEED}")
    return value


def duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h``, ``7d``."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def seconds(text: str) -> float:
    """A non-negative number of seconds (``3``, ``0.5``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds: give e.g. 3 or 0.5"
        ) from None
    if value < 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} seconds: give 0 or more")
    return value


def positive(text: str) -> int:
    """A whole number ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number: give 1 or more"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give 1 or more")
    return value


def non_negative(text: str) -> int:
    """A whole number ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number: give 0 or more"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: give 0 or more")
    return value
