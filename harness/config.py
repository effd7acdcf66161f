"""Environment profiles: which environment a run targets and how to reach it.

Owns reading ``environments.toml`` (found by :mod:`harness.project`) and layering overrides on
it — CLI option > ``HARNESS_<FIELD>`` environment variable > the profile's table > the file's
``[defaults]`` — into one immutable :class:`Profile`, and the file's ``default = "…"``
profile. A profile the file protects is loosened only by the file: a variable or an option
may tighten ``protected``/``allow_writes``, never loosen them, and a protected profile never
inherits a loosening from ``[defaults]``.
Credentials never live here: AWS access goes through boto3's normal chain, and when a profile
leaves the AWS region or endpoint unset, boto3 reads ``AWS_REGION``/``AWS_ENDPOINT_URL`` itself.
Every problem is a :class:`ConfigError` whose message names the fix. It does no network I/O,
and never imports the kinds, the clients or the events (nor any adapter): what the adapters
declare is handed in (``declared``; :func:`harness.kinds.registry.load_profile` composes the
two), so every layer can import this module without an import cycle.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.accounts.spec import AccountsSpec, parse_accounts
from harness.errors import ConfigError as ConfigError
from harness.errors import TargetError as TargetError
from harness.project import PROFILES_FILE, project_root
from harness.project import profiles_file as _profiles_file
from harness.safety.protect import validate_routes

DEFAULT_PROFILE = "sandbox"
#: ``harness sweep`` refuses to delete more than this many items unless told (--max).
DEFAULT_SWEEP_MAX = 1000
DEFAULT_FILE = PROFILES_FILE
ENV_PREFIX = "HARNESS_"

#: The settings the adapters declare (name -> :class:`~harness.kinds.base.Setting`), or how
#: to learn them from the profile's ``adapters`` and the profiles file's folder
#: (:func:`harness.kinds.registry.declared_settings`): this module never imports adapters.
Declared = Mapping[str, Any] | Callable[[tuple[str, ...], str], Mapping[str, Any]]


def parse_duration(text: str | int | float) -> float:
    """``90``, ``"90s"``, ``"30m"``, ``"2h"``, ``"7d"`` → seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (use e.g. 90s, 30m, 2h, 7d)")
    number, unit = float(match[1]), match[2] or "s"
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def parse_rate(text: str) -> tuple[float, str]:
    """``"500"``, ``"500/s"``, ``"500 items/s"`` -> (500, items); ``"50cu"``, ``"50 cu/s"``
    -> (50, cu): the sweeper's read budget (``sweep_max_rate``, ``--max-rate``). Raises
    ValueError naming the accepted forms."""
    raw = str(text).strip().lower().replace(" ", "")
    raw = raw.removesuffix("/s")
    unit = "items"
    for suffix, name in (("items", "items"), ("item", "items"), ("rcu", "cu"), ("cu", "cu")):
        if raw.endswith(suffix):  # a bare unit leaves "", which is not a number: refused below
            raw, unit = raw.removesuffix(suffix), name
            break
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not (value > 0 and math.isfinite(value)):  # nan and inf are not budgets either
        raise ValueError(
            f"a read budget is a positive number of items or capacity units per second, "
            f"e.g. 500 (items/s) or 50cu, not {text!r}"
        )
    return value, unit


#: Where events may travel (``events_bus``).
EVENT_BUSES = ("sns", "kafka")

#: Credentials that only the environment may hold: the file field that must not be there →
#: the variables that carry them instead.
ENVIRONMENT_ONLY = {
    "kafka_sasl_username": "HARNESS_KAFKA_SASL_USERNAME",
    "kafka_sasl_password": "HARNESS_KAFKA_SASL_PASSWORD",
    "schema_registry_user": "HARNESS_SCHEMA_REGISTRY_USER",
    "schema_registry_password": "HARNESS_SCHEMA_REGISTRY_PASSWORD",
}

#: How a run proves the URL is the profile's environment before any test (preflight).
IDENTITY_MODES = ("health", "route", "aws-account", "none")
#: ``identity_route``: one read, ``GET /path`` (a query string allowed).
IDENTITY_ROUTE = re.compile(r"GET (/\S*)")
#: What every environment's status route may answer alike: never the name of one
#: (``identity = "route"`` on a protected profile must expect a name, not one of these).
GENERIC_ANSWERS = frozenset(
    (  # noqa: SIM905 (a list of words reads better as words)
        "ok okay up down true false yes no on off healthy unhealthy pass passed fail failed "
        "ready alive live running green success available online null none unknown default "
        "active enabled status good fine"
    ).split()
)


@dataclass(frozen=True)
class Profile:
    """One target environment. Engine field names are also the ``HARNESS_*`` variable names;
    an adapter's settings (``settings``, declared by its kinds) are overridable the same way."""

    name: str
    base_url: str = ""
    #: What the target's identity endpoint must answer as ``environment``; defaults to ``name``.
    environment: str = ""
    #: ``health`` (GET ``health_path`` names the environment), ``route`` (a JSON field or a
    #: header of ``identity_route``'s answer names it), ``aws-account`` (the AWS credentials
    #: belong to ``aws_account_id``) or ``none`` (a loud warning; unprotected only).
    identity: str = "health"
    health_path: str = "/health"
    #: ``identity = "route"``: the read that tells the environment (``"GET /version"``), and
    #: which part of its answer names it: a JSON field (a dotted path, ``"build.env"``) or a
    #: header (``"X-Environment"``), exactly one of the two.
    identity_route: str = ""
    identity_field: str = ""
    identity_header: str = ""
    aws_region: str | None = None
    aws_endpoint_url: str | None = None
    aws_profile: str | None = None
    #: When set, the credentials must belong to this account (checked before any test).
    aws_account_id: str | None = None
    events_topic_arn: str = ""
    processor_queue_url: str = ""
    #: Where the service's events travel: ``sns`` (SNS topic → SQS queues) or ``kafka``.
    events_bus: str = "sns"
    #: Kafka (``events_bus = "kafka"``): the cluster, the service's topic, and the service's
    #: consumer group (whose lag says "processed"); client settings passed through as-is.
    kafka_bootstrap_servers: str = ""
    kafka_topic: str = ""
    kafka_consumer_group: str = ""
    #: ``security.protocol`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL); SASL's username and
    #: password come from $HARNESS_KAFKA_SASL_USERNAME / _PASSWORD only, never this file.
    kafka_security_protocol: str = ""
    #: ``sasl.mechanism`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, ...).
    kafka_sasl_mechanism: str = ""
    #: ``ssl.ca.location``: a CA bundle for TLS to the brokers (the system's when unset).
    kafka_ssl_ca_location: str = ""
    #: A Confluent-compatible schema registry; its credentials come from
    #: $HARNESS_SCHEMA_REGISTRY_USER / _PASSWORD only, never this file.
    schema_registry_url: str = ""
    #: Where the event contracts live (``<type>/v<N>.json``), relative to the profiles file.
    contracts_dir: str = ""
    #: A DynamoDB table (key ``Marker`` S, TTL on ``ExpiresAt``) that holds run leases; without
    #: one, leases are local only and the sweeper relies on the age rule.
    lease_table: str = ""
    #: None = not said: protected unless this is the sandbox (sensitive by default).
    protected: bool | None = None
    #: On a protected profile, the write routes the HTTP client may still send
    #: (``"POST /login"``; ``{id}`` or ``*`` is one path segment, ``**`` the rest).
    allow_writes: tuple[str, ...] = ()
    #: Key words masked in bodies, query strings, form data and headers, on top of the
    #: defaults (password, token, secret, authorization, api key, cookie, session …).
    sensitive_keys: tuple[str, ...] = ()
    #: How long leaked test data may live before the sweeper treats it as abandoned.
    test_data_ttl: float = 7200.0
    #: The sweeper's read budget: items/s (``500``) or capacity units/s (``50cu``); "" = none.
    sweep_max_rate: str = ""
    #: Send ``X-Amzn-Trace-Id`` (AWS X-Ray) beside ``traceparent``, from the same trace id.
    trace_xray: bool = False
    #: CloudWatch Logs groups the service writes to (``/aws/lambda/<function>``): a failed
    #: test gets the lines carrying its trace id (read only; none named: no lookup).
    log_groups: tuple[str, ...] = ()
    #: How long a failed test's log lookup waits for its lines to arrive (ingestion lag).
    log_wait: float = 5.0
    #: A route whose JSON answer names the deployed ``version``, when the identity answer
    #: (``GET health_path``) does not: shown in every report.
    version_path: str = ""
    #: Where runs are recorded (:mod:`harness.history`): ``s3://bucket/prefix`` or an SQLite
    #: file; "" = ``.harness/history.sqlite``.
    history: str = ""
    #: Python modules that define the adapter's kinds (``fixtures.kinds``).
    adapters: tuple[str, ...] = ()
    #: Kinds declared without code: name -> {table, key, marker, index?}.
    kinds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Where each declared kind's fields were written: kind -> field -> ``file`` (the
    #: profile's own ``[NAME.kinds.KIND]``) or ``defaults`` (``[defaults.kinds.KIND]``).
    kind_sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict, compare=False)
    #: The adapter's own settings (declared by its kinds), e.g. ``users_table``.
    settings: Mapping[str, str] = field(default_factory=dict)
    #: The pre-provisioned accounts of ``[NAME.accounts]`` (:mod:`harness.accounts`), if any.
    accounts: AccountsSpec | None = None
    #: Where each engine field and setting came from: ``file``, ``$HARNESS_X`` or ``option``.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: The folder of the profiles file (adapter modules and contracts are found from it).
    config_dir: str = ""
    #: The profiles file this profile was read from.
    config_file: str = ""
    #: The folder whose ``.harness`` keeps the run's state (:func:`harness.project.project_root`).
    project_root: str = field(default="", compare=False)
    #: Guarded fields (:data:`GUARDED`) a ``HARNESS_*`` variable set to something other than
    #: the file's value: field -> variable. See :func:`refuse_env_overrides`.
    env_overrides: Mapping[str, str] = field(default_factory=dict, compare=False)

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

    def setting(self, name: str) -> str:
        """An adapter setting (``profile.setting("users_table")``); "" when unset."""
        return self.settings.get(name, "")

    def __getattr__(self, name: str) -> Any:
        # Old spelling: profile.users_table for an adapter setting.
        settings = self.__dict__.get("settings") or {}
        if name in settings:
            return settings[name]
        raise AttributeError(name)


_ENGINE = {
    f.name: f
    for f in fields(Profile)
    if f.name
    not in (
        "name",
        "kinds",
        "kind_sources",
        "settings",
        "accounts",
        "sources",
        "config_dir",
        "config_file",
        "project_root",
        "env_overrides",
    )
}
#: What decides which environment a run talks to and how it proves it: a variable may not
#: change these on a profile the user named (see :func:`refuse_env_overrides`).
GUARDED = (
    "base_url",
    "aws_endpoint_url",
    "environment",
    "identity",
    "health_path",
    "identity_route",
    "identity_field",
    "identity_header",
    "aws_account_id",
)
#: Set by the harness itself (never by a user) to the names of the exports of a sandbox it
#: started for this run: those fields' source is "sandbox", not a variable.
STARTED_SANDBOX_VARIABLE = "_HARNESS_STARTED_SANDBOX"
ALLOW_OVERRIDE_VARIABLE = f"{ENV_PREFIX}ALLOW_ENV_OVERRIDE"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _coerce(field: str, value: Any, source: str) -> Any:
    if field in ("protected", "trace_xray"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{source}: {field} must be true or false, not {value!r}")
    if field in ("test_data_ttl", "log_wait"):
        try:
            return parse_duration(value)
        except ValueError as error:
            raise ConfigError(f"{source}: {field}: {error}") from None
    if field == "log_groups":
        if isinstance(value, str):  # $HARNESS_LOG_GROUPS="/aws/lambda/a,/aws/lambda/b"
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f'{source}: log_groups must be a list like ["/aws/lambda/my-fn"]')
        return tuple(value)
    if field == "sweep_max_rate":
        text = str(value).strip()
        if text:
            try:
                parse_rate(text)
            except ValueError as error:
                raise ConfigError(f"{source}: sweep_max_rate: {error}") from None
        return text
    if field == "adapters":
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: adapters must be a list of module names")
        return tuple(value)
    if field == "sensitive_keys":
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f'{source}: sensitive_keys must be a list like ["pin", "otp"]')
        return tuple(value)
    if field == "allow_writes":
        if isinstance(value, str):  # $HARNESS_ALLOW_WRITES="POST /login, POST /logout"
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f'{source}: allow_writes must be a list like ["POST /login"]')
        try:
            return validate_routes(value)
        except ValueError as error:
            raise ConfigError(f"{source}: allow_writes: {error}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {field} must be a string, not {value!r}")
    text = value.strip()
    if field == "events_bus" and text.lower() not in EVENT_BUSES:
        raise ConfigError(
            f"{source}: events_bus must be one of {', '.join(EVENT_BUSES)}, not {value!r}"
        )
    if field == "events_bus":
        return text.lower()  # one of EVENT_BUSES: "" was refused above
    if field == "history" and text.startswith("s3:") and not re.fullmatch(r"s3://[^/]+/.*\S", text):
        raise ConfigError(
            f"{source}: history {value!r}: an S3 store is s3://BUCKET/PREFIX (a prefix of its "
            f"own, e.g. s3://ci-artifacts/env-harness-history)"
        )
    if field == "identity" and text not in IDENTITY_MODES:
        raise ConfigError(
            f"{source}: identity must be one of {', '.join(IDENTITY_MODES)}, not {value!r}"
        )
    return text or (None if field.startswith("aws_") else "")


#: The top-level table whose fields every profile of the file inherits (``[defaults]``).
DEFAULTS_TABLE = "defaults"
#: The top-level key naming the profile a run uses when none is named (``default = "local"``).
DEFAULT_KEY = "default"


@dataclass(frozen=True)
class ProfilesFile:
    """What a profiles file says: its profiles, the ``[defaults]`` they share, and the
    ``default = "…"`` profile ("" when it names none)."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    default: str = ""


def _refuse_credentials(path: Path, where: str, table: Mapping[str, Any]) -> None:
    if any(k.startswith("aws_secret") or k == "aws_access_key_id" for k in table):
        raise ConfigError(
            f"{path}: {where} has unknown field(s) for credentials: credentials "
            f"never go in this file; use AWS_PROFILE"
        )
    secrets = sorted(k for k in table if k in ENVIRONMENT_ONLY)
    if secrets:
        variables = ", ".join(ENVIRONMENT_ONLY[k] for k in secrets)
        raise ConfigError(
            f"{path}: {where} has {', '.join(secrets)}: credentials never go in "
            f"this file; remove them and set {variables} in the environment instead"
        )


def read_profiles(path: Path) -> ProfilesFile:
    """What ``path`` says; a missing file says nothing, bad TOML is an error."""
    try:
        # pragma: no mutate start (equivalent: the same codec on supported systems)
        text = path.read_text(encoding="utf-8")
        # pragma: no mutate end
    except FileNotFoundError:
        return ProfilesFile()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML ({error}); fix the syntax there") from None
    default = data.pop(DEFAULT_KEY, "")
    if isinstance(default, dict):  # a profile named "default" (before `default =` existed)
        data[DEFAULT_KEY], default = default, ""
    defaults = data.pop(DEFAULTS_TABLE, {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: {DEFAULTS_TABLE} must be a [defaults] table of shared fields")
    _refuse_credentials(path, "[defaults]", defaults)
    if "accounts" in defaults:
        raise ConfigError(
            f"{path}: [defaults.accounts]: a pool of accounts belongs to one environment; "
            f"write it as [NAME.accounts] under that profile"
        )
    profiles: dict[str, dict[str, Any]] = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {name!r} must be a [table] of one profile")
        _refuse_credentials(path, f"profile [{name}]", table)
        profiles[name] = table
    if not isinstance(default, str):
        raise ConfigError(
            f'{path}: default must name a profile, like default = "local" above the first '
            f"[table], not {default!r}"
        )
    if default and default not in profiles and default != DEFAULT_PROFILE:
        raise ConfigError(
            f'{path}: default = "{default}" names no profile of this file (profiles: '
            f"{', '.join(sorted(profiles)) or 'none'}); name one of them, or add [{default}]"
        )
    return ProfilesFile(profiles, defaults, default)


def profiles_file(
    path: Path | str | None, environ: Mapping[str, str], start: Path | str | None = None
) -> Path:
    """The option's file > ``$HARNESS_CONFIG`` > the nearest ``environments.toml`` from
    ``start`` (pytest's rootdir; the current folder when None) upward
    (:func:`harness.project.profiles_file`)."""
    return _profiles_file(path, environ, start)


def default_profile_name(profiles: Mapping[str, Any], file: Path) -> str:
    """The profile a run uses when none is named (no ``--env``, no ``$HARNESS_ENV``, no
    ``default = "…"`` in the file): the file's only profile; else ``sandbox`` (the embedded
    reference service), which a file may define or leave out; a file of several other
    profiles must be told which."""
    if DEFAULT_PROFILE in profiles or not profiles:
        return DEFAULT_PROFILE
    if len(profiles) == 1:
        return next(iter(profiles))
    raise ConfigError(
        f"{file} defines profiles {', '.join(sorted(profiles))}: name one with --env NAME "
        f'or HARNESS_ENV, or write default = "NAME" at the top of {file}'
    )


def _kinds_of(table: dict[str, Any], where: str, example: str) -> dict[str, dict[str, Any]]:
    """The ``kinds`` tables of a profile (or of ``[defaults]``), taken out of ``table``."""
    # pragma: no mutate start (equivalent: a missing table gives {} either way)
    kinds = table.pop("kinds", {}) or {}
    # pragma: no mutate end
    if not isinstance(kinds, dict) or not all(isinstance(v, dict) for v in kinds.values()):
        raise ConfigError(f"{where}: kinds must be tables like [{example}.kinds.account]")
    return kinds


def _file_protects(name: str, values: Mapping[str, Any]) -> bool:
    """Whether the file's own values (inheritance included) protect the profile: it says
    ``protected = true``, or does not say and is not the sandbox."""
    said = values.get("protected")
    return said if said is not None else name != DEFAULT_PROFILE


def _refuse_inherited_loosening(
    name: str, own: Mapping[str, Any], values: Mapping[str, Any], file: Path
) -> None:
    """A protected profile never inherits ``protected = false`` or ``allow_writes`` from
    ``[defaults]``: it loosens itself only by saying so under its own table."""
    if "protected" not in own and values.get("protected") is False and name != DEFAULT_PROFILE:
        raise ConfigError(
            f"{file}: profile [{name}] would inherit protected = false from [defaults], but a "
            f"profile that does not say is protected: write protected = false under [{name}] "
            f"itself if it really is a test environment (or drop it from [defaults])"
        )
    if "allow_writes" not in own and values.get("allow_writes") and _file_protects(name, values):
        raise ConfigError(
            f"{file}: protected profile [{name}] would inherit allow_writes from [defaults]: a "
            f"protected profile names the writes it lets through itself; write allow_writes = "
            f"[...] under [{name}] (or drop it from [defaults])"
        )


def _refuse_loosening(
    name: str,
    field_name: str,
    value: Any,
    file_values: Mapping[str, Any],
    how: tuple[str, str],
    file: Path,
) -> None:
    """On a profile the file protects, ``protected`` and ``allow_writes`` may be tightened
    by a variable or an option, never loosened: ``how`` is (what set it, how to undo it)."""
    label, undo = how
    if field_name == "protected" and value is False:
        said = "protected = true" if file_values.get(field_name) else "it does not say: protected"
        raise ConfigError(
            f"{label} would unprotect profile [{name}], which {file} protects ({said}): only "
            f"the file can loosen a protected profile. {undo}, or write protected = false "
            f"under [{name}] in {file} if it really is a test environment"
        )
    allowed = tuple(file_values.get("allow_writes", ()))
    extra = (
        [route for route in value if route not in allowed] if field_name == "allow_writes" else []
    )
    if extra:
        raise ConfigError(
            f"{label} would let {', '.join(extra)} through on profile [{name}], which {file} "
            f"protects (its allow_writes: {', '.join(allowed) or 'none'}): only the file can "
            f"loosen a protected profile. {undo} or name only routes the file allows, or add "
            f"them to allow_writes under [{name}] in {file}"
        )


def load_profile(
    name: str | None = None,
    path: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    declared: Declared,
    start: Path | str | None = None,
) -> Profile:
    """Resolve one profile: CLI ``overrides`` > ``HARNESS_*`` in ``environ`` > the file
    (the profile's own table > the file's ``[defaults]``). On a profile the file protects,
    a variable or an option may tighten ``protected``/``allow_writes`` but never loosen them.

    ``declared`` maps each adapter setting name to its :class:`~harness.kinds.base.Setting`,
    or learns them from the profile's adapters (a callable; what
    :func:`harness.kinds.registry.load_profile` passes). Unless ``path`` or
    ``$HARNESS_CONFIG`` names the file, it is looked for from ``start`` (pytest's rootdir;
    the current folder when None) upward."""
    environ = os.environ if environ is None else environ
    started_sandbox = (
        environ[STARTED_SANDBOX_VARIABLE].split() if STARTED_SANDBOX_VARIABLE in environ else []
    )
    file = profiles_file(path, environ, start)
    read = read_profiles(file)
    profiles = read.profiles
    if name:
        name_source = "option"
    elif environ.get(f"{ENV_PREFIX}ENV"):
        name, name_source = environ[f"{ENV_PREFIX}ENV"], f"${ENV_PREFIX}ENV"
    elif read.default:
        name, name_source = read.default, "file"
    else:
        name, name_source = default_profile_name(profiles, file), "default"
    if name not in profiles and name != DEFAULT_PROFILE:
        known = ", ".join(sorted(profiles)) or "none"
        where = file if file.exists() else f"{file} (file not found)"
        raise ConfigError(
            f"unknown environment profile {name!r} in {where}; known profiles: {known}. "
            f"Add a [{name}] table to {file} or pass --env with one of the known names."
        )
    own = dict(profiles.get(name, {}))
    # [defaults] is shared by the profiles the file defines (not the bare built-in sandbox)
    inherited = dict(read.defaults) if name in profiles else {}
    source_of = f"{file} [{name}]"
    values: dict[str, Any] = {}
    sources: dict[str, str] = {"name": name_source}
    env_overrides: dict[str, str] = {}
    own_kinds = _kinds_of(own, source_of, name)
    shared_kinds = _kinds_of(inherited, f"{file} [defaults]", DEFAULTS_TABLE)
    declared_kinds = {
        kind: {**shared_kinds.get(kind, {}), **own_kinds.get(kind, {})}
        for kind in {**shared_kinds, **own_kinds}
    }
    accounts = None
    if "accounts" in own:
        where = f"{file}: [{name}.accounts]"
        accounts = parse_accounts(own.pop("accounts"), where, name, parse_duration)
    table = {**inherited, **own}
    engine_in_file = {k: v for k, v in table.items() if k in _ENGINE}
    extra_in_file = {k: v for k, v in table.items() if k not in _ENGINE}
    for field_name, value in engine_in_file.items():
        mine = field_name in own
        values[field_name] = _coerce(field_name, value, source_of if mine else f"{file} [defaults]")
        sources[field_name] = "file" if mine else "defaults"
    _refuse_inherited_loosening(name, own, values, file)
    file_values = dict(values)
    protects = _file_protects(name, file_values)
    for field_name in _ENGINE:
        variable = f"{ENV_PREFIX}{field_name.upper()}"
        env_value = environ.get(variable)
        if env_value is not None and env_value != "":
            value = _coerce(field_name, env_value, f"${variable}")
            if protects:
                how = (f"${variable}", f"Unset {variable}")
                _refuse_loosening(name, field_name, value, file_values, how, file)
            if variable in started_sandbox:
                sources[field_name] = "sandbox"
            else:
                sources[field_name] = f"${variable}"
                baseline = values.get(field_name, _ENGINE[field_name].default)
                if field_name == "environment":
                    baseline, value_seen = baseline or name, value or name
                else:
                    value_seen = value
                if field_name in GUARDED and value_seen != baseline:
                    env_overrides[field_name] = variable
            values[field_name] = value
    for field_name, value in (overrides or {}).items():
        if value is not None:
            value = _coerce(field_name, value, f"option for {field_name}")
            if protects:
                how = (f"the option for {field_name}", "Drop the option")
                _refuse_loosening(name, field_name, value, file_values, how, file)
            values[field_name] = value
            sources[field_name] = "option"
    config_dir = str(file.resolve().parent)
    adapters = tuple(values.get("adapters", ()))
    if callable(declared):
        declared = declared(adapters, config_dir)
    unknown = sorted(set(extra_in_file) - set(declared))
    if unknown:
        where = f"profile [{name}]"
        if not set(unknown) & set(own):
            where = f"[defaults] (inherited by [{name}])"
        raise ConfigError(
            f"{file}: {where} has unknown field(s) {', '.join(unknown)}; engine "
            f"fields: {', '.join(_ENGINE)}"
            + (f"; settings of its adapters: {', '.join(sorted(declared))}" if declared else "")
            + (
                f". Is an adapter missing from adapters = [...]? (now: {list(adapters)})"
                if not declared
                else ""
            )
        )
    settings: dict[str, str] = {}
    for setting_name in declared:
        if setting_name in extra_in_file:
            value = extra_in_file[setting_name]
            mine = setting_name in own
            if not isinstance(value, str):
                where = source_of if mine else f"{file} [defaults]"
                raise ConfigError(f"{where}: {setting_name} must be a string, not {value!r}")
            settings[setting_name] = value.strip()
            sources[setting_name] = "file" if mine else "defaults"
        variable = f"{ENV_PREFIX}{setting_name.upper()}"
        if environ.get(variable):
            settings[setting_name] = str(environ[variable]).strip()
            sources[setting_name] = "sandbox" if variable in started_sandbox else f"${variable}"
    kind_sources = {
        kind: {f: "file" if f in own_kinds.get(kind, {}) else "defaults" for f in spec}
        for kind, spec in declared_kinds.items()
    }
    profile = Profile(
        name=name,
        kinds=declared_kinds,
        kind_sources=kind_sources,
        settings=settings,
        accounts=accounts,
        sources=sources,
        config_dir=config_dir,
        config_file=str(file),
        project_root=str(project_root(path, environ, start)),
        env_overrides=env_overrides,
        **values,
    )
    _validate(profile, file, declared, set(own_kinds))
    return profile


def _is_loopback(url: str | None) -> bool:
    # pragma: no mutate start (equivalent: "" and "XXXX" both have no hostname: not loopback)
    host = urlparse(url or "").hostname or ""
    # pragma: no mutate end
    return host in ("localhost", "::1") or host.startswith("127.")


def refuse_env_overrides(
    profile: Profile, allow: bool = False, environ: Mapping[str, str] | None = None
) -> None:
    """A profile the user named (``--env NAME`` or ``$HARNESS_ENV``) is that environment: a
    ``HARNESS_*`` variable that changes where it is or how it proves who it is — most often
    a stale export of ``harness env up`` — stops the run, unless the user confirms the
    override (``--allow-env-override`` or ``HARNESS_ALLOW_ENV_OVERRIDE=1``). The sandbox
    profile takes a sandbox's own exports (loopback URLs) as they are."""
    environ = os.environ if environ is None else environ
    if allow or (
        ALLOW_OVERRIDE_VARIABLE in environ
        and environ[ALLOW_OVERRIDE_VARIABLE].strip().lower() in _TRUE
    ):
        return
    if profile.sources.get("name") not in ("option", f"${ENV_PREFIX}ENV", "file"):
        return
    changed = dict(profile.env_overrides)
    if profile.is_sandbox:
        for field_name in ("base_url", "aws_endpoint_url"):
            if field_name in changed and _is_loopback(getattr(profile, field_name)):
                del changed[field_name]
    if not changed:
        return
    how = {"option": "--env", "file": f'default = "{profile.name}" in its file'}.get(
        profile.sources["name"], f"${ENV_PREFIX}ENV"
    )
    variables = ", ".join(changed.values())
    raise ConfigError(
        f"profile [{profile.name}] was named explicitly ({how}), but {variables} "
        f"{'changes' if len(set(changed.values())) == 1 else 'change'} its "
        f"{', '.join(changed)} from what {profile.config_file or DEFAULT_FILE} says: refusing, "
        f"so a stale export cannot redirect the run. Unset {variables} (`harness env down` "
        f"ends a detached sandbox; `unset {' '.join(changed.values())}`), or confirm the "
        f"override with --allow-env-override (or {ALLOW_OVERRIDE_VARIABLE}=1)"
    )


def provenance(profile: Profile) -> dict[str, Any]:
    """Which target a run talks to and where each part of that came from (for the first
    line of a run and the JSON report)."""
    name_source = profile.sources.get("name", "option")
    file_label = profile.config_file or DEFAULT_FILE

    def source(field_name: str) -> str:
        found = profile.sources.get(field_name)
        if found == "file":
            return f"file {file_label}"
        if found == "option":
            return "flag"
        if found == "defaults":
            return f"file {file_label} [defaults]"
        if found:
            return found if found == "sandbox" else f"variable {found}"
        return "default"

    environment_source = source("environment")
    if environment_source == "default":
        environment_source = "the profile's name"
    protected_source = source("protected")
    if protected_source == "default":
        protected_source = (
            "default: the sandbox profile" if profile.is_sandbox else "default: not the sandbox"
        )
    writes = list(profile.allow_writes) if profile.is_protected else []
    topic = profile.kafka_topic if profile.events_bus == "kafka" else profile.events_topic_arn
    # the bus only where there is one: a topic to hear the service's events on
    bus = {"events_bus": profile.events_bus, "events_topic": topic} if topic else {}
    return {
        "profile": profile.name,
        "profile_source": {
            "option": "flag --env",
            "default": "default",
            "file": f'default = "{profile.name}" in {file_label}',
        }.get(name_source, f"variable {name_source}"),
        "config_file": file_label,
        "base_url": profile.base_url,
        "base_url_source": source("base_url"),
        "environment": profile.expected_environment,
        "environment_source": environment_source,
        "aws_endpoint_url": profile.aws_endpoint_url or "",
        "aws_endpoint_url_source": source("aws_endpoint_url") if profile.aws_endpoint_url else "",
        "overridden_by_variables": sorted(profile.env_overrides.values()),
        "protected": profile.is_protected,
        "protected_source": protected_source,
        "allow_writes": writes,
        "allow_writes_source": source("allow_writes") if writes else "",
        **bus,
    }


def describe_target(target: Mapping[str, Any]) -> str:
    """One line: ``target [staging] (flag --env): https://… (file environments.toml), …``."""
    line = (
        f"target [{target['profile']}] ({target['profile_source']}): "
        f"{target['base_url'] or '(no base_url)'} ({target['base_url_source']}), "
        f"environment {target['environment']!r} ({target['environment_source']})"
    )
    if target.get("aws_endpoint_url"):
        line += f", AWS endpoint {target['aws_endpoint_url']} ({target['aws_endpoint_url_source']})"
    if "protected" in target:
        line += f", {'protected' if target['protected'] else 'unprotected'} "
        line += f"({target['protected_source']})"
    if target.get("allow_writes"):
        line += f", writes allowed: {', '.join(target['allow_writes'])} "
        line += f"({target['allow_writes_source']})"
    if target.get("events_bus"):
        line += f", events on {target['events_bus']} (topic {target['events_topic']})"
    return line


def _validate(
    profile: Profile, file: Path, declared: Mapping[str, Any], own_kinds: set[str]
) -> None:
    if profile.base_url and not re.match(r"^https?://[^/\s]+", profile.base_url):
        raise ConfigError(
            f"base_url {profile.base_url!r} of profile [{profile.name}] is not an http(s) URL; "
            f"set it like https://api.staging.example.com"
        )
    for kind_name, spec in profile.kinds.items():
        table = profile.name if kind_name in own_kinds else DEFAULTS_TABLE
        _validate_declared_kind(table, kind_name, spec, file)
    if profile.identity == "none" and profile.is_protected:
        raise ConfigError(
            f'profile [{profile.name}] is protected and has identity = "none": a protected '
            f'target must prove who it is; set identity = "health" (health_path), "route" '
            f'(identity_route) or "aws-account" (aws_account_id)'
        )
    if profile.identity == "route":
        _validate_route(profile)
    elif profile.identity_route and "identity" not in profile.sources:
        raise ConfigError(
            f'profile [{profile.name}] names identity_route but not identity = "route" (the '
            f'default is "health": GET {profile.health_path}); add identity = "route"'
        )
    if profile.identity == "aws-account" and not profile.aws_account_id:
        raise ConfigError(
            f'profile [{profile.name}] has identity = "aws-account" but no aws_account_id: '
            f"set aws_account_id (or HARNESS_AWS_ACCOUNT_ID)"
        )
    if profile.needs_local_sandbox:
        return  # the local sandbox fills in its own names when it starts
    if profile.events_bus == "kafka":
        missing_kafka = [
            f for f in ("kafka_bootstrap_servers", "kafka_topic") if not getattr(profile, f)
        ]
        if missing_kafka:
            hints = "; ".join(f'{f} = "…" or {ENV_PREFIX}{f.upper()}' for f in missing_kafka)
            raise ConfigError(
                f'profile [{profile.name}] has events_bus = "kafka" but no '
                f"{', '.join(missing_kafka)}: set {hints}"
            )
    if not profile.base_url:
        raise ConfigError(
            f'profile [{profile.name}] has no base_url: add base_url = "https://…" under '
            f"[{profile.name}] in {file}, or set {ENV_PREFIX}BASE_URL"
        )
    missing = [
        name
        for name, setting in declared.items()
        if getattr(setting, "required", True) and not profile.settings.get(name)
    ]
    if missing:
        hints = "; ".join(f'{f} = "…" or {ENV_PREFIX}{f.upper()}' for f in missing)
        raise ConfigError(
            f"profile [{profile.name}] is missing {', '.join(missing)}: set {hints} "
            f"(in {file} under [{profile.name}])"
        )


def _validate_route(profile: Profile) -> None:
    """``identity = "route"``: one read, exactly one part of its answer that names the
    environment, and — on a protected profile — an expected value that is a name."""
    where = f'profile [{profile.name}] has identity = "route"'
    if not IDENTITY_ROUTE.fullmatch(profile.identity_route):
        raise ConfigError(
            f"{where} but identity_route = {profile.identity_route!r} is not a read like "
            f'"GET /version": write identity_route = "GET /path" (the route whose answer '
            f"names the environment)"
        )
    if bool(profile.identity_field) == bool(profile.identity_header):
        said = "both" if profile.identity_field else "neither"
        raise ConfigError(
            f"{where} and {said} identity_field and identity_header: name exactly one part of "
            f'the answer that names the environment — identity_field = "env" (a JSON field, a '
            f'dotted path like "build.env") or identity_header = "X-Environment"'
        )
    if profile.identity_field and not re.fullmatch(r"[^.\s]+(\.[^.\s]+)*", profile.identity_field):
        raise ConfigError(
            f"{where} but identity_field = {profile.identity_field!r} is not a dotted path of "
            f'JSON object keys like "env" or "build.env"'
        )
    if profile.identity_header and not re.fullmatch(
        r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", profile.identity_header
    ):
        raise ConfigError(
            f"{where} but identity_header = {profile.identity_header!r} is not a header name "
            f'like "X-Environment"'
        )
    expected = profile.expected_environment
    if profile.is_protected and (
        expected.lower() in GENERIC_ANSWERS or not re.search(r"[a-z]", expected.lower())
    ):
        raise ConfigError(
            f"{where} and is protected, but expects the answer {expected!r}, which every "
            f"environment's status route may give: it cannot tell this environment from "
            f"another. Name a field or header whose value is the environment's own name, and "
            f'set environment = "<that name>" under [{profile.name}]'
        )


#: The fields of a declared kind, by ``type`` (the store; ``dynamodb`` when not said).
STORE_FIELDS = {
    "dynamodb": {"table", "key", "marker", "index", "sweep_order", "run_index", "run_attribute"},
    "cognito": {"user_pool_id", "marker", "client_id", "sweep_order"},
    "s3": {"bucket", "marker", "prefix", "sweep_order"},
    "sql": {"url_variable", "url_secret", "table", "key", "marker", "sweep_order"},
}
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


def _validate_declared_kind(profile: str, kind: str, spec: Mapping[str, Any], file: Path) -> None:
    where = f"{file}: [{profile}.kinds.{kind}]"
    if not _NAME.match(kind):
        raise ConfigError(f"{where}: a kind's name is lowercase letters, digits and _")
    store = spec.get("type", "dynamodb")
    if store not in STORE_FIELDS:
        raise ConfigError(
            f"{where} has type = {store!r}; a declared kind's type is one of "
            f"{', '.join(sorted(STORE_FIELDS))} (dynamodb when not said)"
        )
    if store != "dynamodb":
        _validate_store_kind(where, store, {k: v for k, v in spec.items() if k != "type"})
        return
    known = STORE_FIELDS["dynamodb"] | {"type"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigError(
            f"{where} has unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    if not isinstance(spec.get("table"), str) or not spec["table"]:
        raise ConfigError(f'{where} needs table = "the DynamoDB table name"')
    key = spec.get("key")
    keys = [key] if isinstance(key, str) else key
    if (
        not isinstance(keys, list)
        or not 1 <= len(keys) <= 2
        or not all(isinstance(k, str) and k for k in keys)
    ):
        raise ConfigError(f'{where} needs key = ["hash key"] or ["hash key", "range key"]')
    if not isinstance(spec.get("marker"), str) or not spec["marker"]:
        raise ConfigError(
            f'{where} needs marker = "the attribute whose value carries the run namespace"'
        )
    run_fields = [spec.get(f) for f in ("run_index", "run_attribute")]
    if any(run_fields) and not all(isinstance(f, str) and f for f in run_fields):
        raise ConfigError(
            f'{where}: run_index = "<sparse GSI>" and run_attribute = "<its hash key, '
            f'holding the run id>" go together'
        )


def _validate_store_kind(where: str, store: str, spec: Mapping[str, Any]) -> None:
    """A declared Cognito, S3 or SQL kind's fields (the DynamoDB ones are checked above)."""
    if store == "sql" and any(k in spec for k in ("url", "dsn", "password")):
        raise ConfigError(
            f"{where}: credentials never go in the profiles file; put the database URL in an "
            f'environment variable and name it: url_variable = "ORDERS_DB_URL"'
        )
    unknown = sorted(set(spec) - STORE_FIELDS[store])
    if unknown:
        raise ConfigError(
            f"{where} has unknown field(s) {', '.join(unknown)}; known for type = "
            f'"{store}": type, {", ".join(sorted(STORE_FIELDS[store]))}'
        )
    required = {
        "cognito": {"user_pool_id": '"us-east-1_AbCdEf"', "marker": '"username" or "email"'},
        "s3": {"bucket": '"the bucket name"', "marker": '"key"'},
        "sql": {"table": '"orders"', "marker": '"the column that carries the run namespace"'},
    }[store]
    for name, example in required.items():
        if not isinstance(spec.get(name), str) or not spec[name]:
            raise ConfigError(f"{where} needs {name} = {example}")
    if store == "s3" and spec["marker"] != "key":
        raise ConfigError(f'{where}: an S3 kind\'s object key carries the marker: marker = "key"')
    if store == "s3" and not isinstance(spec.get("prefix", ""), str):
        raise ConfigError(f'{where}: prefix is the key\'s start before the namespace, "uploads/"')
    if store == "cognito" and not isinstance(spec.get("client_id", ""), str):
        raise ConfigError(f"{where}: client_id is the app client's id, a string")
    if store != "sql":
        return
    sources = [f for f in ("url_variable", "url_secret") if spec.get(f)]
    if len(sources) != 1 or not all(isinstance(spec[f], str) for f in sources):
        raise ConfigError(
            f'{where} needs url_variable = "ORDERS_DB_URL" (the variable holding the database '
            f'URL with its credentials) or url_secret = "<Secrets Manager secret id>", one of them'
        )
    if sources == ["url_variable"] and not _VARIABLE.match(spec["url_variable"]):
        raise ConfigError(
            f"{where}: url_variable names an environment variable (letters, digits, _), not "
            f"{spec['url_variable']!r}; put the URL itself in that variable"
        )
    key = spec.get("key")
    keys = [key] if isinstance(key, str) else key
    names = [spec["table"], spec["marker"], *(keys if isinstance(keys, list) else [])]
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f'{where} needs key = ["id"] (the primary key columns)')
    bad = [n for n in names if not _SQL_NAME.match(n)] + [n for n in names[1:] if "." in n]
    if bad:
        raise ConfigError(
            f"{where}: {', '.join(map(repr, bad))} is not a plain SQL name "
            f'(letters, digits, _; the table may be "schema.table")'
        )
