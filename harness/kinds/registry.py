"""Which kinds a run knows: the engine's own, the adapters', and those declared in the profile.

Owns discovery, in one place that the pytest plugin and every CLI command share:

- the engine's kinds (``queue``: a worker's events subscription; ``lease``: a run's lease,
  only when the profile names a ``lease_table``; ``kafka_group`` / ``kafka_topic``: namespaced
  consumer groups and topics on the cluster, only when ``events_bus = "kafka"``);
- adapter modules named by the profile's ``adapters = ["fixtures.kinds"]`` (imported with the
  profiles file's folder on ``sys.path``, so a project's own ``fixtures/`` is found from any
  working directory) and by installed packages through the ``env_harness.adapters``
  entry-point group; every :class:`~harness.kinds.base.Kind` subclass with a ``name`` in them;
- kinds declared without code under ``[profile.kinds.NAME]``, by their ``type``
  (:func:`declared_kind`: :mod:`harness.kinds.declared` for DynamoDB, ``cognito``, ``s3``,
  ``sql``).

It is also the layer that composes a profile with what its adapters declare
(:func:`load_profile`): :mod:`harness.config` reads files and variables and never imports an
adapter. It imports user code but never talks to an environment.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from harness import config
from harness.config import Profile
from harness.errors import ConfigError
from harness.kinds.base import Kind, Setting

if TYPE_CHECKING:
    from harness.clients.aws import Aws

ENTRY_POINT_GROUP = "env_harness.adapters"


def _import(module_name: str, config_dir: str) -> ModuleType:
    if config_dir and config_dir not in sys.path:
        sys.path.insert(0, config_dir)
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"adapter module {module_name!r} cannot be imported ({error}); check adapters = "
            f"[...] in the profile (modules are found from {config_dir or 'the working dir'})"
        ) from None


@cache
def _installed_adapters() -> tuple[tuple[ModuleType, str], ...]:
    """The installed packages' adapters (entry points), each with where it came from: looked
    up once per process, since the lookup reads every installed distribution's metadata
    (~20 ms of CPU each time)."""
    found = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        package = f" of package {entry.dist.name}" if entry.dist is not None else ""
        found.append((entry.load(), f"entry point {entry.name} = {entry.value}{package}"))
    return tuple(found)


def _adapter_origins(adapters: Iterable[str], config_dir: str) -> list[tuple[ModuleType, str]]:
    named = [(_import(name, config_dir), f"adapter module {name}") for name in adapters]
    return [*named, *_installed_adapters()]


def adapter_modules(adapters: Iterable[str], config_dir: str) -> list[ModuleType]:
    return [module for module, _ in _adapter_origins(adapters, config_dir)]


def _kinds_in(module: ModuleType) -> list[type[Kind]]:
    found = []
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, Kind)
            and value.name
            and value.__module__ == module.__name__
        ):
            found.append(value)
    return found


def engine_kind_classes() -> list[type[Kind]]:
    from harness.kinds.kafka import KafkaGroupKind, KafkaTopicKind
    from harness.kinds.lease import LeaseKind
    from harness.kinds.queue import QueueKind

    return [QueueKind, LeaseKind, KafkaGroupKind, KafkaTopicKind]


ENGINE_ORIGIN = "the engine's"


def _classes_and_origins(
    adapters: Iterable[str], config_dir: str
) -> dict[str, tuple[type[Kind], str]]:
    classes = {cls.name: (cls, ENGINE_ORIGIN) for cls in engine_kind_classes()}
    for module, origin in _adapter_origins(adapters, config_dir):
        for cls in _kinds_in(module):
            other = classes.get(cls.name, (None, ""))[0]
            if other is not None and other is not cls:
                raise ConfigError(
                    f"two kinds are named {cls.name!r}: {other.__module__}.{other.__name__} and "
                    f"{cls.__module__}.{cls.__name__}; rename one"
                )
            if other is None:
                classes[cls.name] = (cls, origin)
    return classes


def kind_classes(adapters: Iterable[str], config_dir: str) -> dict[str, type[Kind]]:
    return {name: cls for name, (cls, _) in _classes_and_origins(adapters, config_dir).items()}


def kind_origins(profile: Profile) -> dict[str, str]:
    """Where each kind a run of ``profile`` may know came from, for the one line that names
    them when a create asks for another: ``declared in environments.toml``, ``adapter module
    fixtures.kinds``, ``entry point notes = notes_adapter.kinds of package notes-adapter``,
    ``the engine's``."""
    origins = {
        name: origin
        for name, (_, origin) in _classes_and_origins(profile.adapters, profile.config_dir).items()
    }
    where = Path(profile.config_file).name if profile.config_file else "the profile"
    for name in profile.kinds:
        origins[name] = f"declared in {where}"
    return origins


def declared_settings(adapters: Iterable[str], config_dir: str) -> dict[str, Setting]:
    """Every setting the adapters' kinds declare, by name."""
    settings: dict[str, Setting] = {}
    for cls in kind_classes(adapters, config_dir).values():
        for setting in cls.settings:
            settings[setting.name] = setting
    return settings


def load_profile(
    name: str | None = None,
    path: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    start: Path | str | None = None,
) -> Profile:
    """The profile, with the settings its adapters' kinds declare (the adapters it names are
    imported to learn them): :func:`harness.config.load_profile` given
    :func:`declared_settings`. What the plugin and every command load."""
    return config.load_profile(
        name, path, overrides, environ, declared=declared_settings, start=start
    )


def load_kinds(profile: Profile, aws: Aws) -> dict[str, Kind]:
    """One instance of every kind the profile's run knows, keyed by name."""
    kinds: dict[str, Kind] = {
        name: cls(profile, aws)
        for name, cls in kind_classes(profile.adapters, profile.config_dir).items()
        if cls.enabled(profile)
    }
    for name, spec in profile.kinds.items():
        if name in kinds:
            raise ConfigError(
                f"[{profile.name}.kinds.{name}] is also a kind of the adapters; rename one"
            )
        kinds[name] = declared_kind(name, spec, profile, aws)
    return kinds


def settings_tables(kinds: Mapping[str, Kind]) -> list[tuple[str, str, Setting | None]]:
    """(what, table name, setting) for every table the kinds need: adapters' table settings
    and declared kinds' tables. Preflight and doctor describe each one."""
    from harness.kinds.declared import DeclaredKind

    rows: list[tuple[str, str, Setting | None]] = []
    seen: set[str] = set()
    for kind in kinds.values():
        if isinstance(kind, DeclaredKind):
            if kind.table_name not in seen:
                seen.add(kind.table_name)
                rows.append((f"kind {kind.name}", kind.table_name, None))
            continue
        for setting in type(kind).settings:
            value = kind.profile.setting(setting.name)
            if setting.table and value and value not in seen:
                seen.add(value)
                rows.append((setting.name, value, setting))
    return rows


def declared_kind(name: str, spec: Mapping[str, Any], profile: Profile, aws: Aws) -> Kind:
    """The kind ``[profile.kinds.NAME]`` declares, by its ``type`` (dynamodb when not said);
    the profile has validated its fields."""
    store = spec.get("type", "dynamodb")
    if store == "cognito":
        from harness.kinds.cognito import CognitoKind

        return CognitoKind.from_spec(name, spec, profile, aws)
    if store == "s3":
        from harness.kinds.s3 import S3Kind

        return S3Kind.from_spec(name, spec, profile, aws)
    if store == "sql":
        from harness.kinds.sql import SqlKind

        return SqlKind.from_spec(name, spec, profile, aws)
    from harness.kinds.declared import DeclaredKind

    return DeclaredKind.from_spec(name, spec, profile, aws)
