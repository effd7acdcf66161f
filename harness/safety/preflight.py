"""Preflight: prove the target is reachable and is the environment the profile names,
before any test runs.

Owns turning every way a target can be wrong — unreachable URL, a ``/health`` that is not
JSON, a different environment behind the URL (redirects followed, final host checked), AWS
credentials or endpoint missing, a table that does not exist — into one
:class:`~harness.config.ConfigError` whose message names the fix. It reads, never writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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
from harness.kinds.registry import settings_tables


def check_service(
    profile: Profile,
    session: requests.Session | None = None,
    warn: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Prove the target is the profile's environment, the way the profile says (``identity``):
    ``health`` — ``GET <health_path>`` answers JSON naming the environment (returned);
    ``aws-account`` — checked with the AWS credentials (:func:`check_identity`), the URL only
    has to answer; ``none`` — a loud warning (refused on protected profiles by the config)."""
    if profile.identity == "none":
        warn(
            f'WARNING: profile [{profile.name}] has identity = "none": nothing proves '
            f"{profile.base_url} is the {profile.expected_environment!r} environment"
        )
        return {"identity": "none"}
    if profile.identity == "aws-account":
        return {"identity": "aws-account", "aws_account_id": profile.aws_account_id}
    url = profile.base_url.rstrip("/") + "/" + profile.health_path.lstrip("/")
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
    if environment != profile.expected_environment:
        raise TargetError(
            f"{url} says it is environment {environment!r}, but profile [{profile.name}] expects "
            f"{profile.expected_environment!r}: refusing to run against the wrong target. "
            f"Fix base_url, or the profile's `environment` field if the name changed."
        )
    return dict(body)


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
    """Credentials resolve, the endpoint answers, and every table the kinds need exists
    (one DescribeTable each: never a read of their items). Returns each table's item count
    as DescribeTable reports it (the residue check's size rule reuses it)."""
    check_identity(profile, aws)
    tables = settings_tables(kinds)
    if profile.lease_table:
        tables.append(("lease_table", profile.lease_table, None))
    sizes: dict[str, int] = {}
    for field, name, _setting in tables:
        if name not in sizes:  # the lease table may be a kind's table too
            sizes[name] = _item_count(profile, aws, field, name)
    stores.preflight(kinds)  # Cognito pools, S3 buckets, SQL tables
    return sizes


def _item_count(profile: Profile, aws: Aws, field: str, name: str) -> int:
    """DescribeTable's item count of table ``name`` (``field``: what needs it, for the fix)."""
    try:
        described = aws.dynamodb_client.describe_table(TableName=name)["Table"]
        return int(described.get("ItemCount", 0))
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
