"""Environment profiles: which environment a run targets and how to reach it.

Owns reading ``environments.toml`` and layering overrides on it — CLI option >
``HARNESS_<FIELD>`` environment variable > file — into one immutable :class:`Profile`.
Credentials never live here: AWS access goes through boto3's normal chain, and when a profile
leaves the AWS region or endpoint unset, boto3 reads ``AWS_REGION``/``AWS_ENDPOINT_URL`` itself.
Every problem is a :class:`ConfigError` whose message names the fix. It does no network I/O.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_PROFILE = "sandbox"
#: ``harness sweep`` refuses to delete more than this many items unless told (--max).
DEFAULT_SWEEP_MAX = 1000
DEFAULT_FILE = "environments.toml"
ENV_PREFIX = "HARNESS_"


class ConfigError(Exception):
    """Bad or missing configuration; the message says what to change."""


def parse_duration(text: str | int | float) -> float:
    """``90``, ``"90s"``, ``"30m"``, ``"2h"``, ``"7d"`` → seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (use e.g. 90s, 30m, 2h, 7d)")
    number, unit = float(match[1]), match[2] or "s"
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@dataclass(frozen=True)
class Profile:
    """One target environment. Field names are also the ``HARNESS_*`` variable names."""

    name: str
    base_url: str = ""
    #: What the target's ``GET /health`` must answer as ``environment``; defaults to ``name``.
    environment: str = ""
    aws_region: str | None = None
    aws_endpoint_url: str | None = None
    aws_profile: str | None = None
    #: When set, the credentials must belong to this account (checked before any test).
    aws_account_id: str | None = None
    users_table: str = ""
    tokens_table: str = ""
    notifications_table: str = ""
    events_topic_arn: str = ""
    processor_queue_url: str = ""
    #: None = not said: protected unless this is the sandbox (sensitive by default).
    protected: bool | None = None
    #: How long leaked test data may live before the sweeper treats it as abandoned.
    test_data_ttl: float = 7200.0
    schema_registry_url: str = ""

    @property
    def is_sandbox(self) -> bool:
        return self.name == DEFAULT_PROFILE

    @property
    def is_protected(self) -> bool:
        return self.protected if self.protected is not None else not self.is_sandbox

    @property
    def expected_environment(self) -> str:
        return self.environment or self.name

    @property
    def needs_local_sandbox(self) -> bool:
        """The sandbox profile without a base URL: the harness starts one itself."""
        return self.is_sandbox and not self.base_url


_FIELDS = {f.name: f for f in fields(Profile) if f.name != "name"}
_REQUIRED = ("users_table", "tokens_table", "notifications_table")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(field: str, value: Any, source: str) -> Any:
    if field == "protected":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{source}: protected must be true or false, not {value!r}")
    if field == "test_data_ttl":
        try:
            return parse_duration(value)
        except ValueError as error:
            raise ConfigError(f"{source}: test_data_ttl: {error}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {field} must be a string, not {value!r}")
    return value.strip() or (None if field.startswith("aws_") else "")


def read_profiles(path: Path) -> dict[str, dict[str, Any]]:
    """The profiles table of ``path``; a missing file is an empty table, bad TOML an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML ({error}); fix the syntax there") from None
    profiles: dict[str, dict[str, Any]] = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {name!r} must be a [table] of one profile")
        unknown = sorted(set(table) - set(_FIELDS))
        if unknown:
            raise ConfigError(
                f"{path}: profile [{name}] has unknown field(s) {', '.join(unknown)}; "
                f"known fields: {', '.join(_FIELDS)}"
            )
        if any(k.startswith("aws_secret") or k == "aws_access_key_id" for k in table):
            raise ConfigError(f"{path}: credentials never go in this file; use AWS_PROFILE")
        profiles[name] = table
    return profiles


def load_profile(
    name: str | None = None,
    path: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Profile:
    """Resolve one profile: CLI ``overrides`` > ``HARNESS_*`` in ``environ`` > the file."""
    environ = os.environ if environ is None else environ
    name = name or environ.get(f"{ENV_PREFIX}ENV") or DEFAULT_PROFILE
    file = Path(path or environ.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_FILE)
    profiles = read_profiles(file)
    if name not in profiles and name != DEFAULT_PROFILE:
        known = ", ".join(sorted(profiles)) or "none"
        where = file if file.exists() else f"{file} (file not found)"
        raise ConfigError(
            f"unknown environment profile {name!r} in {where}; known profiles: {known}. "
            f"Add a [{name}] table to {file} or pass --env with one of the known names."
        )
    values: dict[str, Any] = {}
    for field, value in profiles.get(name, {}).items():
        values[field] = _coerce(field, value, f"{file} [{name}]")
    for field in _FIELDS:
        env_value = environ.get(f"{ENV_PREFIX}{field.upper()}")
        if env_value is not None and env_value != "":
            values[field] = _coerce(field, env_value, f"${ENV_PREFIX}{field.upper()}")
    for field, value in (overrides or {}).items():
        if value is not None:
            values[field] = _coerce(field, value, f"option for {field}")
    profile = Profile(name=name, **values)
    _validate(profile, file)
    return profile


def _validate(profile: Profile, file: Path) -> None:
    if profile.base_url and not re.match(r"^https?://[^/\s]+", profile.base_url):
        raise ConfigError(
            f"base_url {profile.base_url!r} of profile [{profile.name}] is not an http(s) URL; "
            f"set it like https://api.staging.example.com"
        )
    if profile.needs_local_sandbox:
        return  # the local sandbox fills in its own names when it starts
    if not profile.base_url:
        raise ConfigError(
            f'profile [{profile.name}] has no base_url: add base_url = "https://…" under '
            f"[{profile.name}] in {file}, or set {ENV_PREFIX}BASE_URL"
        )
    missing = [f for f in _REQUIRED if not getattr(profile, f)]
    if missing:
        hints = "; ".join(f'{f} = "…" or {ENV_PREFIX}{f.upper()}' for f in missing)
        raise ConfigError(
            f"profile [{profile.name}] is missing {', '.join(missing)}: set {hints} "
            f"(in {file} under [{profile.name}])"
        )
