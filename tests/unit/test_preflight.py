"""Preflight (harness/safety/preflight.py): the identity check over real HTTP on loopback —
redirects followed and the final host checked — and the AWS account check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from harness.config import ConfigError, Profile
from harness.safety.preflight import check_aws, check_identity, check_service
from tests.unit.loopback import Loopback, loopback


@pytest.fixture
def service() -> Iterator[Loopback]:
    with loopback() as server:
        yield server


def profile_for(url: str, **kwargs: Any) -> Profile:
    return Profile(name="staging", base_url=url, **kwargs)


def test_the_health_endpoint_proves_the_environment(service: Loopback) -> None:
    service.route("/health", 200, {"environment": "staging", "version": "7"})
    assert check_service(profile_for(service.url + "/")) == {
        "environment": "staging",
        "version": "7",
    }
    assert [r.path for r in service.received] == ["/health"]


def test_the_profiles_environment_field_and_health_path_are_used(service: Loopback) -> None:
    service.route("/status", 200, {"environment": "stg-eu"})
    profile = profile_for(service.url, environment="stg-eu", health_path="status")
    assert check_service(profile)["environment"] == "stg-eu"


def test_another_environment_behind_the_url_is_refused(service: Loopback) -> None:
    service.route("/health", 200, {"environment": "production"})
    with pytest.raises(ConfigError) as error:
        check_service(profile_for(service.url))
    assert str(error.value).startswith(
        f"{service.url}/health says it is environment 'production', but profile [staging] "
        f"expects 'staging': refusing to run against the wrong target."
    )


def test_a_redirect_on_the_same_host_is_followed(service: Loopback) -> None:
    service.route("/health", 302, b"", Location="/v2/health")
    service.route("/v2/health", 200, {"environment": "staging"})
    assert check_service(profile_for(service.url))["environment"] == "staging"
    assert [r.path for r in service.received] == ["/health", "/v2/health"]


def test_a_redirect_to_another_host_is_refused_even_if_it_claims_the_name(
    service: Loopback,
) -> None:
    with loopback("127.0.0.2") as elsewhere:
        elsewhere.route("/health", 200, {"environment": "staging"})
        service.route("/health", 301, b"", Location=elsewhere.url + "/health")
        with pytest.raises(ConfigError) as error:
            check_service(profile_for(service.url))
        assert [r.path for r in elsewhere.received] == ["/health"]  # followed, then judged
    assert str(error.value) == (
        f"{service.url}/health redirected to {elsewhere.url}/health: the final host "
        f"127.0.0.2:{elsewhere.port} is not the profile's; set base_url to the real service URL"
    )


@pytest.mark.parametrize("answer", [b"<html>login</html>", b'{"status": "ok"}', b'["environment"]'])
def test_an_answer_without_an_environment_names_the_fix(service: Loopback, answer: bytes) -> None:
    service.route("/health", 200, answer)
    with pytest.raises(ConfigError) as error:
        check_service(profile_for(service.url))
    shown = "an HTML page" if answer.startswith(b"<") else repr(answer.decode())
    assert str(error.value) == (
        f"{service.url}/health answered 200 with {shown}, not JSON with an "
        f"'environment' field: is base_url pointing at the service's API root?"
    )


BODY = '{"environment": "staging", "db": "down"}'


def test_an_unhealthy_answer_is_refused(service: Loopback) -> None:
    service.route("/health", 500, {"environment": "staging", "db": "down"})
    with pytest.raises(ConfigError) as error:
        check_service(profile_for(service.url), session=__import__("requests").Session())
    assert str(error.value) == (f"{service.url}/health is unhealthy (500): " + repr(BODY))


def test_an_unreachable_target_names_the_fix() -> None:
    with loopback() as gone:
        url = gone.url
    with pytest.raises(ConfigError) as error:
        check_service(profile_for(url), session=__import__("requests").Session())
    assert str(error.value).startswith(f"cannot reach {url}/health (ConnectionError). Is the")


def test_identity_none_warns_and_aws_account_does_not_call_the_url() -> None:
    warnings: list[str] = []
    profile = profile_for("http://127.0.0.1:9", identity="none", protected=False)
    assert check_service(profile, warn=warnings.append) == {"identity": "none"}
    assert warnings == [
        'WARNING: profile [staging] has identity = "none": nothing proves '
        "http://127.0.0.1:9 is the 'staging' environment"
    ]
    account = profile_for("http://127.0.0.1:9", identity="aws-account", aws_account_id="42")
    assert check_service(account) == {"identity": "aws-account", "aws_account_id": "42"}


# -- the AWS account check -----------------------------------------------------------------------


class Sts:
    def __init__(self, account: str | Exception) -> None:
        self.account = account
        self.calls = 0

    def get_caller_identity(self) -> dict[str, str]:
        self.calls += 1
        if isinstance(self.account, Exception):
            raise self.account
        return {"Account": self.account}


class Dynamo:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.described: list[str] = []

    def describe_table(self, TableName: str) -> dict[str, Any]:
        self.described.append(TableName)
        if self.error is not None:
            raise self.error
        return {"Table": {}}


class FakeAws:
    endpoint_url = "http://127.0.0.1:5000"

    def __init__(self, account: str | Exception = "111", error: Exception | None = None) -> None:
        self.sts = Sts(account)
        self.dynamodb_client = Dynamo(error)


def test_the_account_check_passes_for_the_profiles_account() -> None:
    aws = FakeAws("111122223333")
    check_identity(profile_for("http://x", aws_account_id="111122223333"), aws)  # type: ignore[arg-type]
    assert aws.sts.calls == 1


def test_the_account_check_refuses_other_credentials() -> None:
    with pytest.raises(ConfigError) as error:
        check_identity(profile_for("http://x", aws_account_id="222"), FakeAws("111"))  # type: ignore[arg-type]
    assert str(error.value) == (
        "the AWS credentials are for account 111, but profile [staging] is account 222: "
        "refusing to run. Use AWS_PROFILE for the right account, or fix aws_account_id."
    )


def test_the_account_check_is_skipped_without_an_account_and_fails_without_credentials() -> None:
    aws = FakeAws(NoCredentialsError())
    check_identity(profile_for("http://x"), aws)  # type: ignore[arg-type]
    assert aws.sts.calls == 0
    with pytest.raises(ConfigError) as error:
        check_identity(profile_for("http://x", aws_account_id="222"), aws)  # type: ignore[arg-type]
    assert str(error.value) == (
        "cannot confirm the AWS account (NoCredentialsError): set AWS_PROFILE for account 222"
    )


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "DescribeTable")


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (NoCredentialsError(), "no AWS credentials found: set AWS_PROFILE"),
        (NoRegionError(), "no AWS region: set aws_region in profile [staging] or AWS_REGION"),
        (
            EndpointConnectionError(endpoint_url="http://x"),
            "cannot reach the AWS endpoint http://127.0.0.1:5000: check aws_endpoint_url of "
            "profile [staging] or HARNESS_AWS_ENDPOINT_URL",
        ),
        (
            client_error("ResourceNotFoundException"),
            "table 'leases' (lease_table) does not exist in http://127.0.0.1:5000: fix "
            "lease_table in profile [staging] or HARNESS_LEASE_TABLE",
        ),
        (client_error("AccessDenied"), "AWS refused describe_table(leases): AccessDenied: "),
    ],
)
def test_check_aws_describes_each_table_and_names_the_fix(error: Exception, message: str) -> None:
    aws = FakeAws(error=error)
    profile = profile_for("http://x", lease_table="leases", aws_account_id="111")
    with pytest.raises(ConfigError) as raised:
        check_aws(profile, aws, {})  # type: ignore[arg-type]
    assert str(raised.value).startswith(message)
    assert aws.dynamodb_client.described == ["leases"] and aws.sts.calls == 1


def test_check_aws_passes_when_every_table_exists() -> None:
    aws = FakeAws()
    check_aws(profile_for("http://x", lease_table="leases"), aws, {})  # type: ignore[arg-type]
    assert aws.dynamodb_client.described == ["leases"]
    check_aws(profile_for("http://x"), aws, {})  # type: ignore[arg-type]
    assert aws.dynamodb_client.described == ["leases"]  # no lease table: nothing more


def test_the_health_url_joins_base_and_path_whatever_their_slashes(service: Loopback) -> None:
    service.route("/v1/health", 200, {"environment": "staging"})
    assert check_service(profile_for(service.url + "/v1//", health_path="//health"))
    assert check_service(profile_for(service.url + "/v1/", health_path="/health"))
    assert check_service(profile_for(service.url + "/v1", health_path="health"))
    assert [r.path for r in service.received] == ["/v1/health"] * 3


def test_a_flaky_gateway_is_retried_before_the_run_starts(service: Loopback) -> None:
    """Without a session of its own, preflight retries 502/503/504 (a deploy in progress)."""
    service.once("/health", 503, {"busy": True})
    service.route("/health", 200, {"environment": "staging"})
    assert check_service(profile_for(service.url))["environment"] == "staging"
    assert [r.path for r in service.received] == ["/health", "/health"]


def test_a_session_given_is_used_as_is_with_bounded_timeouts(service: Loopback) -> None:
    import requests

    calls: list[dict[str, Any]] = []

    class Recording(requests.Session):
        def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
            calls.append({"url": url, **kwargs})
            return super().get(url, **kwargs)

    service.once("/health", 503, {"environment": "staging"})
    service.route("/health", 200, {"environment": "staging"})
    session = Recording()
    with pytest.raises(ConfigError, match=r"is unhealthy \(503\)"):  # no retries mounted
        check_service(profile_for(service.url), session=session)
    assert calls == [
        {"url": f"{service.url}/health", "timeout": (3.05, 10), "allow_redirects": True}
    ]


def test_a_long_answer_is_cut_in_the_message(service: Loopback) -> None:
    service.route("/health", 200, b"x" * 500)
    with pytest.raises(ConfigError) as error:
        check_service(profile_for(service.url))
    assert f"with {'x' * 80 + '…'!r}, not JSON" in str(error.value)


def test_check_aws_messages_without_an_endpoint_and_for_a_declared_kinds_table() -> None:
    from harness.kinds.declared import DeclaredKind

    aws = FakeAws(error=NoCredentialsError())
    aws.endpoint_url = None  # type: ignore[assignment]
    with pytest.raises(ConfigError) as error:
        check_aws(profile_for("http://x", lease_table="leases"), aws, {})  # type: ignore[arg-type]
    assert str(error.value) == (
        "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) "
        "for the account of this environment"
    )
    aws.dynamodb_client.error = EndpointConnectionError(endpoint_url="http://x")
    with pytest.raises(ConfigError, match=r"cannot reach the AWS endpoint \(default\): check"):
        check_aws(profile_for("http://x", lease_table="leases"), aws, {})  # type: ignore[arg-type]
    aws.dynamodb_client.error = client_error("ResourceNotFoundException")
    profile = profile_for("http://x")
    note = DeclaredKind("note", profile, aws, table="notes", key=["id"], marker="owner")  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as error:
        check_aws(profile, aws, {"note": note})  # type: ignore[arg-type]
    assert str(error.value) == (
        "table 'notes' (kind note) does not exist in AWS: fix table under [staging.kinds.note]"
    )
    aws.dynamodb_client.error = ClientError({}, "DescribeTable")  # no error code at all
    with pytest.raises(ConfigError) as error:
        check_aws(profile, aws, {"note": note})  # type: ignore[arg-type]
    assert str(error.value).startswith("AWS refused describe_table(notes): : ")


def test_only_slashes_are_trimmed_from_the_url_parts(service: Loopback) -> None:
    service.route("/X/Xh", 200, {"environment": "staging"})
    assert check_service(profile_for(service.url + "/X", health_path="/Xh"))
    assert [r.path for r in service.received] == ["/X/Xh"]


def test_preflight_mounts_retries_for_both_schemes(
    service: Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    import harness.safety.preflight as preflight

    made: list[requests.Session] = []

    class Kept(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(preflight.requests, "Session", Kept)
    service.route("/health", 200, {"environment": "staging"})
    check_service(profile_for(service.url))
    [session] = made
    for scheme in ("http://", "https://"):
        assert session.get_adapter(scheme + "x.example").max_retries.total == 4  # type: ignore[attr-defined]


# -- a body in a few words, for the one-line messages -------------------------------------------


def answer(body: str, content_type: str | None = None) -> Any:
    import requests

    response = requests.Response()
    response._content = body.encode()
    response.encoding = "utf-8"
    response.status_code = 200
    if content_type is not None:
        response.headers["Content-Type"] = content_type
    return response


@pytest.mark.parametrize(
    ("body", "content_type", "shown"),
    [
        # a login page: its title names it (tags in any case, the title's spaces trimmed)
        (
            "\n <!DOCTYPE html><HTML><HEAD><TITLE lang=en>  Sign in  </TITLE></HEAD>",
            "text/html; charset=utf-8",
            "an HTML page ('Sign in')",
        ),
        ("<html><head><title>Gateway</title>", None, "an HTML page ('Gateway')"),
        # said to be HTML by its media type alone (any case), even when it does not look it
        ("Service Unavailable", "Text/HTML;charset=utf-8", "an HTML page"),
        ("Service Unavailable", "text/html", "an HTML page"),
        # the media type decides, not its parameters
        ("plain words", "text/plain;profile=html", "'plain words'"),
        ("plain words", None, "'plain words'"),
        ("", None, "an empty body"),
        ("  \n ", "application/json", "an empty body"),
    ],
)
def test_a_body_is_described_in_a_few_words(
    body: str, content_type: str | None, shown: str
) -> None:
    from harness.safety.preflight import describe_body

    assert describe_body(answer(body, content_type)) == shown


def test_a_body_is_cut_after_80_characters_and_its_whitespace_folded() -> None:
    from harness.safety.preflight import describe_body

    assert describe_body(answer("a  b\n" + "x" * 76)) == repr("a b " + "x" * 76)  # 80: whole
    assert describe_body(answer("y" * 81)) == repr("y" * 80 + "…")


def test_an_html_login_page_is_named_by_its_title_in_the_message(service: Loopback) -> None:
    service.route("/health", 200, b"<html><head><title>Sign in - SSO</title></head><body>")
    with pytest.raises(ConfigError) as error:
        check_service(profile_for(service.url))
    assert str(error.value) == (
        f"{service.url}/health answered 200 with an HTML page ('Sign in - SSO'), not JSON with "
        f"an 'environment' field: is base_url pointing at the service's API root?"
    )


def test_an_empty_answer_is_named_as_such(service: Loopback) -> None:
    service.route("/health", 502, b"")
    with pytest.raises(ConfigError) as error:
        check_service(profile_for(service.url), session=__import__("requests").Session())
    assert str(error.value).startswith(f"{service.url}/health answered 502 with an empty body,")


# -- check_aws: what it describes, and what it returns ------------------------------------------


class Counting(Dynamo):
    """DescribeTable answers with each table's item count (absent: DynamoDB omits it)."""

    def __init__(self, counts: dict[str, int]) -> None:
        super().__init__()
        self.counts = counts

    def describe_table(self, TableName: str) -> dict[str, Any]:
        super().describe_table(TableName)
        count = self.counts.get(TableName)
        table = {"TableName": TableName, "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}
        return {"Table": table | ({} if count is None else {"ItemCount": count})}


def declared(name: str, table: str, profile: Profile, aws: FakeAws) -> Any:
    from harness.kinds.declared import DeclaredKind

    return DeclaredKind(name, profile, aws, table=table, key=["id"], marker="owner")  # type: ignore[arg-type]


def test_check_aws_returns_each_tables_item_count_describing_each_table_once() -> None:
    aws = FakeAws()
    aws.dynamodb_client = Counting({"notes": 7, "memos": 3})
    profile = profile_for("http://x", lease_table="notes")  # the lease table is a kind's too
    kinds = {
        "note": declared("note", "notes", profile, aws),
        "draft": declared("draft", "notes", profile, aws),
        "memo": declared("memo", "memos", profile, aws),
        "tag": declared("tag", "tags", profile, aws),  # DescribeTable gives no count
    }
    assert check_aws(profile, aws, kinds) == {"notes": 7, "memos": 3, "tags": 0}  # type: ignore[arg-type]
    assert aws.dynamodb_client.described == ["notes", "memos", "tags"]  # described, never read


def test_check_aws_describes_the_lease_table_after_the_kinds_tables() -> None:
    aws = FakeAws()
    aws.dynamodb_client = Counting({"leases": 2})
    profile = profile_for("http://x", lease_table="leases")
    assert check_aws(profile, aws, {"note": declared("note", "notes", profile, aws)}) == {  # type: ignore[arg-type]
        "notes": 0,
        "leases": 2,
    }
    assert aws.dynamodb_client.described == ["notes", "leases"]
