"""AWS access for one worker: one boto3 session and one client per service, reused.

Owns the retry and timeout policy (botocore's ``standard`` retry mode — no hand-written
loops) and the emulator rule: when the endpoint is on loopback and boto3 finds no
credentials, dummy ones are used, because the emulator accepts any and a newcomer has none.
Real AWS always goes through boto3's normal credential chain; nothing here reads a file.

On a protected profile every client it builds refuses all but read operations (a botocore
hook on the session, see :mod:`harness.safety.protect`): a test, a kind or the harness
itself cannot write there through these clients — except what an ``allow``
(:class:`~harness.safety.protect.AwsAllowance`) names exactly, which only the account pool's
own clients carry.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.session
from botocore.config import Config

from harness.config import Profile
from harness.safety.protect import AwsAllowance, install_aws_guard

RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 6},
    connect_timeout=3,
    read_timeout=15,
    max_pool_connections=32,
)


def is_loopback_url(url: str | None) -> bool:
    if not url:
        return False
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Aws:
    """Lazily built, cached boto3 clients for one profile."""

    def __init__(
        self,
        profile: Profile,
        config: Config = RETRY_CONFIG,
        *,
        read_only: bool | None = None,
        allow: AwsAllowance | None = None,
    ) -> None:
        self.profile = profile
        self._config = config
        #: Refuse every write operation; by default on a protected profile.
        self.read_only = profile.is_protected if read_only is None else read_only
        #: The writes a read-only session still lets through (the account pool's only).
        self.allow = allow

    @cached_property
    def session(self) -> boto3.Session:
        # One botocore session, given credentials in place when the emulator needs them:
        # building a second session only for them cost its set-up again (~7 ms of CPU).
        core = botocore.session.Session()
        session = boto3.Session(
            botocore_session=core,
            profile_name=self.profile.aws_profile,
            region_name=self.profile.aws_region,
        )
        if is_loopback_url(self.endpoint_url) and session.get_credentials() is None:
            core.set_credentials("sandbox", "sandbox")
            if not session.region_name:
                core.set_config_variable("region", "us-east-1")
        if self.read_only:
            install_aws_guard(session.events, self.profile.name, self.allow)
        return session

    @property
    def endpoint_url(self) -> str | None:
        return self.profile.aws_endpoint_url or None

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"config": self._config}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        return kwargs

    def client(self, service: str) -> Any:
        """A client of any other service (``secretsmanager``, ``ssm`` …), built once."""
        clients: dict[str, Any] = self.__dict__.setdefault("_clients", {})
        if service not in clients:
            clients[service] = self.session.client(service, **self._kwargs())
        return clients[service]

    @cached_property
    def dynamodb(self) -> Any:
        return self.session.resource("dynamodb", **self._kwargs())

    @cached_property
    def dynamodb_client(self) -> Any:
        return self.dynamodb.meta.client

    @cached_property
    def sns(self) -> Any:
        return self.session.client("sns", **self._kwargs())

    @cached_property
    def sqs(self) -> Any:
        return self.session.client("sqs", **self._kwargs())

    @cached_property
    def cloudwatch(self) -> Any:
        return self.session.client("cloudwatch", **self._kwargs())

    @cached_property
    def logs(self) -> Any:
        """CloudWatch Logs: the service's log lines for a failed test (reads only)."""
        return self.session.client("logs", **self._kwargs())

    @cached_property
    def sts(self) -> Any:
        return self.session.client("sts", **self._kwargs())

    @cached_property
    def cognito_idp(self) -> Any:
        return self.session.client("cognito-idp", **self._kwargs())

    @cached_property
    def s3(self) -> Any:
        kwargs = self._kwargs()
        if self.endpoint_url:  # an emulator or a gateway: bucket names go in the path
            kwargs["config"] = kwargs["config"].merge(Config(s3={"addressing_style": "path"}))
        return self.session.client("s3", **kwargs)

    @cached_property
    def secretsmanager(self) -> Any:
        return self.session.client("secretsmanager", **self._kwargs())

    def table(self, name: str) -> Any:
        """The table's resource, built once: building one costs ~1 ms of CPU (boto3 makes
        its class anew each time), which a per-test or per-item lookup would pay each call."""
        tables: dict[str, Any] = self.__dict__.setdefault("_tables", {})
        if name not in tables:
            tables[name] = self.dynamodb.Table(name)
        return tables[name]

    def sibling(self) -> Aws:
        """Clients of its own on this same boto3 session, for another thread.

        boto3 resources are not thread-safe, but building a second session costs ~0.1 s of
        CPU (botocore loads its endpoint and service data again). The sibling shares the
        session and its loaded data; its clients are still its own. Build them (use the
        sibling once) in this thread before handing it to another: a session must not
        create clients from two threads at once."""
        twin = Aws(self.profile, self._config, read_only=self.read_only, allow=self.allow)
        twin.__dict__["session"] = self.session
        return twin
