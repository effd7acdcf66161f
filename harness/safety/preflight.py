"""Preflight: prove the target is reachable and is the environment the profile names,
before any test runs.

Owns reading the deployed build's version (:func:`service_version`), and turning every way a
target can be wrong — unreachable URL, a ``/health`` (or the profile's identity route) that
does not name the environment, a different environment behind the URL (redirects followed,
final host checked), AWS credentials or endpoint missing, a table that does not exist, a
declared kind whose key or indexes are not its table's — into one
:class:`~harness.config.ConfigError` whose message names the fix. It reads, never writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import requests
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)
from requests.adapters import HTTPAdapter

from harness.clients.aws import Aws
from harness.clients.http import default_retry
from harness.config import ConfigError, Profile, TargetError
from harness.kinds import stores
from harness.kinds.base import Kind
from harness.kinds.declared import DeclaredKind
from harness.kinds.registry import settings_tables


def check_service(
    profile: Profile,
    session: requests.Session | None = None,
    warn: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Prove the target is the profile's environment, the way the profile says (``identity``):
    ``health`` — ``GET <health_path>`` answers JSON naming the environment (returned);
    ``route`` — ``identity_route``'s answer names it in a JSON field or a header
    (:func:`check_route`); ``aws-account`` — checked with the AWS credentials
    (:func:`check_identity`), the URL only has to answer; ``none`` — a loud warning (refused
    on protected profiles by the config)."""
    if profile.identity == "none":
        warn(
            f'WARNING: profile [{profile.name}] has identity = "none": nothing proves '
            f"{profile.base_url} is the {profile.expected_environment!r} environment"
        )
        return {"identity": "none"}
    if profile.identity == "aws-account":
        return {"identity": "aws-account", "aws_account_id": profile.aws_account_id}
    if profile.identity == "route":
        return check_route(profile, session)
    url, response = _get(profile, profile.health_path, session)
    try:
        body = response.json()
        environment = body["environment"]
    except (ValueError, KeyError, TypeError):
        raise TargetError(
            f"{url} answered {response.status_code} with {describe_body(response)}, not JSON "
            f"with an 'environment' field: is base_url pointing at the service's API root?"
        ) from None
    if response.status_code != 200:
        raise TargetError(f"{url} is unhealthy ({response.status_code}): {describe_body(response)}")
    _same_environment(profile, url, environment, "")
    return dict(body)


def check_route(profile: Profile, session: requests.Session | None = None) -> dict[str, Any]:
    """``identity = "route"``: ``GET <path of identity_route>`` answers 2xx (redirects
    followed, the final host checked), and its ``identity_field`` (a dotted path into the JSON
    body) or its ``identity_header`` is a string equal to the profile's environment. It
    proves what the route says: a route that answers the same in every environment proves
    nothing (the config refuses, on a protected profile, an expected value that names no
    environment)."""
    path = profile.identity_route.removeprefix("GET ")  # the config admits only GET /path
    url, response = _get(profile, path, session)
    answered = f"{url} answered {response.status_code}"
    if not 200 <= response.status_code < 300:
        raise TargetError(
            f"{answered} with {describe_body(response)}: the identity route "
            f"{profile.identity_route!r} must answer 2xx; check base_url and identity_route of "
            f"profile [{profile.name}]"
        )
    proof: dict[str, Any] = {"identity": "route", "identity_route": profile.identity_route}
    if profile.identity_header:
        part = f"header {profile.identity_header}"
        value: Any = response.headers.get(profile.identity_header)
        proof["identity_header"] = profile.identity_header
        if value is None:
            raise TargetError(
                f"{answered} without a {profile.identity_header} header: fix identity_header "
                f"(or identity_route) of profile [{profile.name}]"
            )
    else:
        part = f"field {profile.identity_field}"
        proof["identity_field"] = profile.identity_field
        try:
            value = response.json()
        except ValueError:
            raise TargetError(
                f"{answered} with {describe_body(response)}, not JSON with a "
                f"{profile.identity_field!r} field: fix identity_route of profile "
                f"[{profile.name}]"
            ) from None
        for key in profile.identity_field.split("."):
            if not isinstance(value, dict) or key not in value:
                raise TargetError(
                    f"{answered} with {describe_body(response)}, without the field "
                    f"{profile.identity_field!r}: fix identity_field of profile [{profile.name}]"
                )
            value = value[key]
    if not isinstance(value, str):
        raise TargetError(
            f"{url}'s {part} is {value!r}, not a name: it cannot say which environment this "
            f"is; point identity_field / identity_header of profile [{profile.name}] at the "
            f"environment's name"
        )
    _same_environment(profile, url, value.strip(), f" (its {part})")
    return {**proof, "environment": value.strip()}


def _get(
    profile: Profile, path: str, session: requests.Session | None
) -> tuple[str, requests.Response]:
    """``GET base_url + path`` (redirects followed; the final host must be the profile's),
    retrying a flaky gateway unless a session is given."""
    url = profile.base_url.rstrip("/") + "/" + path.lstrip("/")
    http = session or requests.Session()
    if session is None:  # a flaky network should not abort a run before it starts
        http.mount("http://", HTTPAdapter(max_retries=default_retry()))
        http.mount("https://", HTTPAdapter(max_retries=default_retry()))
    try:
        response = http.get(url, timeout=(3.05, 10), allow_redirects=True)
    except requests.RequestException as error:
        raise TargetError(
            f"cannot reach {url} ({type(error).__name__}). Is the environment up? Check "
            f"base_url of profile [{profile.name}] or HARNESS_BASE_URL; for a local sandbox, "
            f"unset HARNESS_BASE_URL and the harness starts one."
        ) from None
    final_host = urlparse(response.url).netloc
    if final_host != urlparse(profile.base_url).netloc:
        raise TargetError(
            f"{url} redirected to {response.url}: the final host {final_host} is not the "
            f"profile's; set base_url to the real service URL"
        )
    return url, response


def _same_environment(profile: Profile, url: str, environment: Any, part: str) -> None:
    if environment != profile.expected_environment:
        raise TargetError(
            f"{url} says{part} it is environment {environment!r}, but profile [{profile.name}] "
            f"expects {profile.expected_environment!r}: refusing to run against the wrong "
            f"target. Fix base_url, or the profile's `environment` field if the name changed."
        )


def service_version(
    profile: Profile,
    identity: Mapping[str, Any],
    session: requests.Session | None = None,
    warn: Callable[[str], None] = lambda _: None,
) -> str:
    """The deployed build, for every report: the identity answer's ``version``, else what
    ``GET <version_path>`` names (its JSON's ``version``, or its first line of text); "" when
    neither says (a route that cannot be read is a warning, never a stop)."""
    said = identity.get("version")
    if said not in (None, ""):
        return str(said)[:120]
    if not profile.version_path:
        return ""
    url = profile.base_url.rstrip("/") + "/" + profile.version_path.lstrip("/")
    try:
        response = (session or requests.Session()).get(url, timeout=(3.05, 10))
        response.raise_for_status()
    except requests.RequestException as error:
        warn(f"WARNING: no service version: {url}: {type(error).__name__}")
        return ""
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip().splitlines() or [""])[0][:120]
    version = body.get("version") if isinstance(body, dict) else body
    return "" if version in (None, "") or isinstance(version, dict | list) else str(version)[:120]


def describe_body(response: requests.Response) -> str:
    """A body in a few words for a one-line error: never a page of escaped HTML."""
    text = response.text.strip()
    # pragma: no mutate start (equivalent: header names are case-blind; no type is not HTML)
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    # pragma: no mutate end
    if "html" in kind or text[:1] == "<":
        title = re.search(r"(?i)<title[^>]*>([^<]{1,80})", text)
        return f"an HTML page ({title[1].strip()!r})" if title else "an HTML page"
    if not text:
        return "an empty body"
    first = " ".join(text.split())
    return repr(first[:80] + ("…" if len(first) > 80 else ""))


def check_identity(profile: Profile, aws: Aws) -> None:
    """When the profile names an AWS account, the credentials must be that account's; the
    region is the profile's (boto3 is given it, so only the account can differ)."""
    if not profile.aws_account_id:
        return
    try:
        account = aws.sts.get_caller_identity()["Account"]
    except (NoCredentialsError, ClientError, EndpointConnectionError) as error:
        raise ConfigError(
            f"cannot confirm the AWS account ({type(error).__name__}): set AWS_PROFILE for "
            f"account {profile.aws_account_id}"
        ) from None
    if str(account) != str(profile.aws_account_id):
        raise TargetError(
            f"the AWS credentials are for account {account}, but profile [{profile.name}] is "
            f"account {profile.aws_account_id}: refusing to run. Use AWS_PROFILE for the right "
            f"account, or fix aws_account_id."
        )


def check_aws(profile: Profile, aws: Aws, kinds: Mapping[str, Kind]) -> dict[str, int]:
    """Credentials resolve, the endpoint answers, every table the kinds need exists (one
    DescribeTable each: never a read of their items), and each declared kind fits its table
    (:func:`kind_misfits`, from the same answer). Returns each table's item count as
    DescribeTable reports it (the residue check's size rule reuses it)."""
    check_identity(profile, aws)
    tables = settings_tables(kinds)
    if profile.lease_table:
        tables.append(("lease_table", profile.lease_table, None))
    described: dict[str, Mapping[str, Any]] = {}
    for field, name, _setting in tables:
        if name not in described:  # the lease table may be a kind's table too
            described[name] = _describe(profile, aws, field, name)
    misfits = [
        misfit
        for kind in kinds.values()
        if isinstance(kind, DeclaredKind)
        for misfit in kind_misfits(kind, described[kind.table_name])
    ]
    if misfits:
        raise ConfigError("; and ".join(map(str, misfits)))
    stores.preflight(kinds)  # Cognito pools, S3 buckets, SQL tables
    return {name: int(table.get("ItemCount", 0)) for name, table in described.items()}


@dataclass(frozen=True)
class Misfit:
    """A declared kind that does not fit its table: the run refuses to start (exit 8) and
    ``doctor`` shows a FAIL row. ``field`` is the kind's TOML field that is wrong (``key``,
    ``index``, ``run_index``); ``problem`` names the table's real key or indexes; ``fix`` is
    the TOML line to write, and where."""

    kind: str
    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}: {self.fix}"


def kind_misfits(kind: DeclaredKind, table: Mapping[str, Any]) -> list[Misfit]:
    """How ``kind`` does not fit ``table`` (a DescribeTable ``Table``): its ``key`` must be
    the table's KeySchema (hash, then range); its ``index`` an index of the table whose hash
    key is the marker; its ``run_index`` an index whose hash key is ``run_attribute`` and that
    carries the marker (the residue check reads it from there)."""
    found = [_key_misfit(kind, table)]
    if kind.index:
        found.append(_index_misfit(kind, table))
    if kind.run_index:
        found.append(_run_index_misfit(kind, table))
    return [misfit for misfit in found if misfit is not None]


def _key_misfit(kind: DeclaredKind, table: Mapping[str, Any]) -> Misfit | None:
    real = key_names(table["KeySchema"])
    if kind.key == real:
        return None
    return Misfit(
        kind.name,
        "key",
        f"kind {kind.name}: key = {_toml(kind.key)} is not the key of table "
        f"{kind.table_name!r} (its KeySchema: {_keys_shown(table['KeySchema'])})",
        f"write key = {_toml(real)} under {where_declared(kind, 'key')}",
    )


def _index_misfit(kind: DeclaredKind, table: Mapping[str, Any]) -> Misfit | None:
    index = table_indexes(table).get(kind.index)
    marker = kind.marker_attribute
    if index is not None and key_names(index["KeySchema"])[0] == marker:
        return None
    where = where_declared(kind, "index")
    on_marker = indexes_on(table, marker)
    fix = (
        f"write index = {_toml(on_marker[0])} under {where}"
        if on_marker
        else f"remove index = {_toml(kind.index)} from {where} (finding what belongs to a "
        f"resource then scans {kind.table_name}), or give {kind.table_name} a GSI whose hash "
        f"key is {marker}"
    )
    return Misfit(kind.name, "index", _index_problem(kind, "index", table, marker), fix)


def _run_index_misfit(kind: DeclaredKind, table: Mapping[str, Any]) -> Misfit | None:
    index = table_indexes(table).get(kind.run_index)
    where = where_declared(kind, "run_index")
    if index is None:
        on_run = indexes_on(table, kind.run_attribute)
        fix = (
            f"write run_index = {_toml(on_run[0])} under {where}"
            if on_run
            else f"remove run_index and run_attribute from {where} (the residue check then "
            f"scans {kind.table_name} while it is small), or give {kind.table_name} a sparse "
            f"GSI whose hash key is {kind.run_attribute}"
        )
        return Misfit(kind.name, "run_index", _missing_index(kind, "run_index", table), fix)
    hash_key = key_names(index["KeySchema"])[0]
    if hash_key != kind.run_attribute:
        return Misfit(
            kind.name,
            "run_index",
            _index_problem(kind, "run_index", table, f"run_attribute {kind.run_attribute}"),
            f"write run_attribute = {_toml(hash_key)} under "
            f"{where_declared(kind, 'run_attribute')}",
        )
    marker = kind.marker_attribute
    if _projects(index, marker, key_names(table["KeySchema"])):
        return None
    projection = index.get("Projection", {}).get("ProjectionType", "KEYS_ONLY")
    return Misfit(
        kind.name,
        "run_index",
        f"kind {kind.name}: run_index {kind.run_index!r} of table {kind.table_name!r} projects "
        f"{projection}, without the marker {marker} the residue check reads from it",
        f"project {marker} into {kind.run_index} (ProjectionType ALL, or INCLUDE {marker}), "
        f"or remove run_index and run_attribute from {where}",
    )


def key_names(schema: list[Mapping[str, str]]) -> list[str]:
    """A KeySchema's attribute names, the hash key first."""
    return [k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"])]


def table_indexes(table: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A described table's global and local secondary indexes, by name (each with ``Local``
    true for an LSI)."""
    found: dict[str, Mapping[str, Any]] = {}
    for group, local in (("GlobalSecondaryIndexes", False), ("LocalSecondaryIndexes", True)):
        for index in table.get(group, []):
            found[index["IndexName"]] = {**index, "Local": local}
    return found


def indexes_on(table: Mapping[str, Any], attribute: str) -> list[str]:
    """The names of the table's indexes whose hash key is ``attribute``."""
    return [
        name
        for name, index in table_indexes(table).items()
        if key_names(index["KeySchema"])[0] == attribute
    ]


def _projects(index: Mapping[str, Any], attribute: str, table_key: list[str]) -> bool:
    """Whether a Query of ``index`` can return ``attribute`` (an LSI fetches from the table)."""
    projection = index.get("Projection", {})
    return (
        index["Local"]
        or projection.get("ProjectionType") == "ALL"
        or attribute in table_key
        or attribute in key_names(index["KeySchema"])
        or attribute in projection.get("NonKeyAttributes", [])
    )


def _index_problem(kind: DeclaredKind, field: str, table: Mapping[str, Any], wanted: str) -> str:
    """``field``'s index is keyed on another attribute than ``wanted`` (its key shown), or
    missing from the table (:func:`_missing_index`)."""
    name = getattr(kind, field)
    indexes = table_indexes(table)
    if name not in indexes:
        return _missing_index(kind, field, table)
    return (
        f"kind {kind.name}: {field} {name!r} of table {kind.table_name!r} is keyed on "
        f"{_keys_shown(indexes[name]['KeySchema'])}, not on {wanted}"
    )


def _missing_index(kind: DeclaredKind, field: str, table: Mapping[str, Any]) -> str:
    """``field``'s index is not one of the table's (they are listed)."""
    indexes = table_indexes(table)
    listed = ", ".join(f"{n} ({_keys_shown(i['KeySchema'])})" for n, i in sorted(indexes.items()))
    return (
        f"kind {kind.name}: {field} {getattr(kind, field)!r} is not an index of table "
        f"{kind.table_name!r} ({f'its indexes: {listed}' if listed else 'it has none'})"
    )


def _keys_shown(schema: list[Mapping[str, str]]) -> str:
    ordered = sorted(schema, key=lambda k: k["KeyType"])
    return ", ".join(f"{k['AttributeName']} {k['KeyType']}" for k in ordered)


def _toml(value: Any) -> str:
    """A TOML value (a JSON string or list of strings is one)."""
    return json.dumps(value)


def where_declared(kind: DeclaredKind, field: str) -> str:
    """The TOML table that says (or should say) ``field`` of ``kind``: the profile's own
    ``[NAME.kinds.KIND]``, or ``[defaults.kinds.KIND]`` when the field came from there."""
    sources = kind.profile.kind_sources.get(kind.name, {})
    owner = (
        "defaults" if sources.get(field, sources.get("table")) == "defaults" else kind.profile.name
    )
    return f"[{owner}.kinds.{kind.name}]"


def _describe(profile: Profile, aws: Aws, field: str, name: str) -> Mapping[str, Any]:
    """DescribeTable's ``Table`` of ``name`` (``field``: what needs it, for the fix)."""
    try:
        return dict(aws.dynamodb_client.describe_table(TableName=name)["Table"])
    except NoCredentialsError:
        raise ConfigError(
            "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY) for the account of this environment"
        ) from None
    except NoRegionError:
        raise ConfigError(
            f"no AWS region: set aws_region in profile [{profile.name}] or AWS_REGION"
        ) from None
    except EndpointConnectionError:
        raise TargetError(
            f"cannot reach the AWS endpoint {aws.endpoint_url or '(default)'}: check "
            f"aws_endpoint_url of profile [{profile.name}] or HARNESS_AWS_ENDPOINT_URL"
        ) from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            fix = (
                f"fix table under [{profile.name}.{field.replace(' ', 's.')}]"
                if field.startswith("kind ")
                else f"fix {field} in profile [{profile.name}] or HARNESS_{field.upper()}"
            )
            raise ConfigError(
                f"table {name!r} ({field}) does not exist in {aws.endpoint_url or 'AWS'}: {fix}"
            ) from None
        raise ConfigError(f"AWS refused describe_table({name}): {code}: {error}") from None
