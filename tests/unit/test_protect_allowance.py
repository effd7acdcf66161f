"""The one opening in a protected profile's AWS rule (harness/safety/protect.py AwsAllowance),
taken at each edge on real botocore clients pointed at a closed port: what the allowance
names goes out (it reaches the network: EndpointConnectionError), anything a hair beside it
is refused before any connection (ProtectedTargetError) — another table, a run's lease, a
put without a condition, an update, another Cognito client or flow — and an empty allowance
lets nothing through. Reads of Secrets Manager and SSM pass as reads."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from harness.accounts.spec import LEASE_PREFIX
from harness.clients.aws import Aws
from harness.config import Profile
from harness.safety.protect import AwsAllowance, ProtectedTargetError

TABLE = "test-leases"
ACCOUNT = f"{LEASE_PREFIX}secretsmanager:prod/smoke/1"
COND = "attribute_not_exists(#k)"
NAMES = {"#k": "Marker"}


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _aws(allow: AwsAllowance | None, protected: bool = True) -> Aws:
    profile = Profile(
        name="production",
        protected=protected,
        aws_endpoint_url=_closed_port(),
        aws_region="us-east-1",
    )
    config = Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1)
    return Aws(profile, config, allow=allow)


ALLOW = AwsAllowance(lease_table=TABLE, lease_prefix=LEASE_PREFIX, cognito_client_id="app1")


def goes_out(call: Callable[[], Any]) -> None:
    with pytest.raises(EndpointConnectionError):
        call()


def refused(call: Callable[[], Any], what: str) -> None:
    with pytest.raises(ProtectedTargetError) as error:
        call()
    assert f"protected target [production]: AWS {what} refused — " in str(error.value)


def test_an_account_lease_put_and_delete_go_out_in_either_form() -> None:
    aws = _aws(ALLOW)
    table = aws.table(TABLE)
    goes_out(
        lambda: table.put_item(
            Item={"Marker": ACCOUNT, "Holder": "h:1"},
            ConditionExpression=COND,
            ExpressionAttributeNames=NAMES,
        )
    )
    goes_out(
        lambda: table.delete_item(
            Key={"Marker": ACCOUNT}, ConditionExpression=COND, ExpressionAttributeNames=NAMES
        )
    )
    client = aws.dynamodb_client
    goes_out(  # the low-level client's typed form
        lambda: client.put_item(
            TableName=TABLE,
            Item={"Marker": {"S": ACCOUNT}},
            ConditionExpression=COND,
            ExpressionAttributeNames=NAMES,
        )
    )
    goes_out(lambda: aws.sibling().table(TABLE).get_item(Key={"Marker": ACCOUNT}))
    twin = aws.sibling()  # the refresh thread's clients carry the same opening
    goes_out(
        lambda: twin.table(TABLE).put_item(
            Item={"Marker": ACCOUNT}, ConditionExpression=COND, ExpressionAttributeNames=NAMES
        )
    )


@pytest.mark.parametrize(
    ("why", "call"),
    [
        (
            "no condition",
            lambda t, c: t(TABLE).put_item(Item={"Marker": ACCOUNT}),
        ),
        (
            "another table",
            lambda t, c: t("users").put_item(
                Item={"Marker": ACCOUNT}, ConditionExpression=COND, ExpressionAttributeNames=NAMES
            ),
        ),
        (
            "a run's lease",
            lambda t, c: t(TABLE).put_item(
                Item={"Marker": "itest-20260101t000000-abcd-lease"},
                ConditionExpression=COND,
                ExpressionAttributeNames=NAMES,
            ),
        ),
        (
            "the prefix not at the start",
            lambda t, c: t(TABLE).delete_item(
                Key={"Marker": f"x{ACCOUNT}"},
                ConditionExpression=COND,
                ExpressionAttributeNames=NAMES,
            ),
        ),
        (
            "no item at all",
            lambda t, c: c.put_item(TableName=TABLE, ConditionExpression=COND),
        ),
        (
            "no marker",
            lambda t, c: t(TABLE).put_item(
                Item={"Other": ACCOUNT}, ConditionExpression=COND, ExpressionAttributeNames=NAMES
            ),
        ),
        (
            "a marker that is not a string",
            lambda t, c: c.put_item(
                TableName=TABLE,
                Item={"Marker": {"N": "1"}},
                ConditionExpression=COND,
                ExpressionAttributeNames=NAMES,
            ),
        ),
        (
            "an update",
            lambda t, c: t(TABLE).update_item(
                Key={"Marker": ACCOUNT},
                UpdateExpression="SET #k = :v",
                ConditionExpression=COND,
                ExpressionAttributeNames=NAMES,
                ExpressionAttributeValues={":v": "x"},
            ),
        ),
        (
            "a batch",
            lambda t, c: c.batch_write_item(
                RequestItems={TABLE: [{"PutRequest": {"Item": {"Marker": {"S": ACCOUNT}}}}]}
            ),
        ),
    ],
)
def test_a_dynamodb_write_beside_the_opening_is_refused(why: str, call: Any) -> None:
    aws = _aws(ALLOW)
    with pytest.raises(ProtectedTargetError):
        call(aws.table, aws.dynamodb_client)


def test_a_cognito_login_through_the_pools_client_goes_out_and_nothing_else() -> None:
    cognito = _aws(ALLOW).client("cognito-idp")

    def login(client_id: str = "app1", flow: str = "USER_PASSWORD_AUTH") -> Any:
        return cognito.initiate_auth(
            AuthFlow=flow, ClientId=client_id, AuthParameters={"USERNAME": "u", "PASSWORD": "p"}
        )

    goes_out(login)
    refused(lambda: login("app2"), "cognito-idp InitiateAuth")
    refused(lambda: login(flow="USER_SRP_AUTH"), "cognito-idp InitiateAuth")
    refused(  # the pool's client and flow, but another operation: an admin's
        lambda: cognito.admin_initiate_auth(
            UserPoolId="us-east-1_x", ClientId="app1", AuthFlow="USER_PASSWORD_AUTH"
        ),
        "cognito-idp AdminInitiateAuth",
    )
    refused(
        lambda: cognito.admin_set_user_password(
            UserPoolId="us-east-1_x", Username="u", Password="p", Permanent=True
        ),
        "cognito-idp AdminSetUserPassword",
    )


@pytest.mark.parametrize(
    "allow",
    [
        None,
        AwsAllowance(),
        AwsAllowance(lease_table=TABLE),  # no prefix: it must not open every item
        AwsAllowance(lease_prefix=LEASE_PREFIX),
    ],
)
def test_an_empty_or_partial_allowance_opens_nothing(allow: AwsAllowance | None) -> None:
    aws = _aws(allow)
    refused(
        lambda: aws.table(TABLE).put_item(
            Item={"Marker": ACCOUNT}, ConditionExpression=COND, ExpressionAttributeNames=NAMES
        ),
        "dynamodb PutItem",
    )
    refused(
        lambda: aws.client("cognito-idp").initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH", ClientId="", AuthParameters={}
        ),
        "cognito-idp InitiateAuth",
    )


def test_the_pools_secrets_are_reads_and_their_writes_are_refused() -> None:
    aws = _aws(ALLOW)
    goes_out(lambda: aws.client("secretsmanager").get_secret_value(SecretId="prod/smoke/1"))
    goes_out(lambda: aws.client("ssm").get_parameter(Name="/prod/smoke/1", WithDecryption=True))
    refused(
        lambda: aws.client("secretsmanager").put_secret_value(SecretId="s", SecretString="x"),
        "secretsmanager PutSecretValue",
    )
    refused(
        lambda: aws.client("ssm").put_parameter(Name="/p", Value="x", Type="String"),
        "ssm PutParameter",
    )
    assert aws.client("ssm") is aws.client("ssm")  # built once


def test_an_unprotected_profile_has_no_rule_to_open() -> None:
    aws = _aws(None, protected=False)
    goes_out(lambda: aws.table("users").put_item(Item={"Marker": "anything"}))
