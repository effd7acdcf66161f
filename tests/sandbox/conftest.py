"""Fixtures for the sandbox's tests.

``service_env`` (unit): the service's environment variables plus moto's in-process
``mock_aws`` with the resources provisioned, for Chalice's test client.
``sandbox`` (integration, session-scoped): one real ``python -m sandbox`` subprocess with its
exports parsed, always stopped (SIGINT, then SIGKILL after a deadline).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from launching import LaunchedSandbox, launch

REPO = Path(__file__).resolve().parents[2]
SERVICE_DIR = REPO / "sandbox" / "service"
for _path in (str(REPO), str(SERVICE_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

SERVICE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "ENVIRONMENT_NAME": "unit",
    "USERS_TABLE_NAME": "sandbox-users",
    "TOKEN_TABLE_NAME": "sandbox-tokens",
    "NOTIFICATIONS_TABLE_NAME": "sandbox-notifications",
    "NOTIFICATIONS_QUEUE_NAME": "sandbox-notifications-processor",
}


@pytest.fixture
def service_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    import boto3
    from chalicelib import settings
    from harness.sandbox.provision import ResourceNames, provision
    from moto import mock_aws

    for key, value in SERVICE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ENDPOINT_URL", raising=False)
    monkeypatch.delenv("CONTRACTS_DIR", raising=False)
    with mock_aws():
        done = provision(boto3.session.Session(region_name="us-east-1"), None, ResourceNames())
        monkeypatch.setenv("EVENTS_TOPIC_ARN", done.events_topic_arn)
        settings.reset()
        try:
            yield {
                **SERVICE_ENV,
                "EVENTS_TOPIC_ARN": done.events_topic_arn,
                "QUEUE_URL": done.processor_queue_url,
            }
        finally:
            settings.reset()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedSandbox]:
    launched = launch(["--quiet"], tmp_path_factory.mktemp("sandbox"))
    try:
        yield launched
    finally:
        launched.stop()
