"""The emulator rule of :class:`harness.clients.aws.Aws`: on a loopback endpoint with no
credentials anywhere, dummy ones (the emulator takes any); elsewhere, boto3's own chain and
nothing more. No network: only the session's credentials and region are read."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.clients.aws import Aws
from harness.config import Profile


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine with no AWS credentials, files or instance role."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_a_loopback_endpoint_without_credentials_gets_the_emulators_dummy_ones() -> None:
    aws = Aws(Profile(name="sandbox", aws_endpoint_url="http://127.0.0.1:4566"))
    credentials = aws.session.get_credentials()
    assert credentials is not None
    assert (credentials.access_key, credentials.secret_key) == ("sandbox", "sandbox")
    assert aws.session.region_name == "us-east-1"


def test_the_profiles_region_is_kept_on_loopback() -> None:
    aws = Aws(
        Profile(name="sandbox", aws_endpoint_url="http://localhost:4566", aws_region="eu-west-1")
    )
    assert aws.session.region_name == "eu-west-1"
    assert aws.session.get_credentials() is not None


def test_credentials_found_on_loopback_are_used_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDMINE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "mine")
    aws = Aws(Profile(name="sandbox", aws_endpoint_url="http://127.0.0.1:4566"))
    credentials = aws.session.get_credentials()
    assert credentials is not None and credentials.access_key == "AKIDMINE"


@pytest.mark.parametrize("endpoint", ["", "https://dynamodb.eu-west-1.amazonaws.com"])
def test_no_dummy_credentials_away_from_loopback(endpoint: str) -> None:
    aws = Aws(Profile(name="staging", aws_endpoint_url=endpoint, aws_region="eu-west-1"))
    assert aws.session.get_credentials() is None
