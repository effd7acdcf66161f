"""The ``account`` fixture: one pre-provisioned account per worker, for the whole run.

For targets where nothing may be created (a protected profile: production): the profile's
``[NAME.accounts]`` pool names existing accounts whose credentials live in AWS Secrets Manager
or SSM Parameter Store. The fixture leases one for this worker — two workers, or two
concurrent runs, never share one — logs in as it through the route the profile allows (or
Cognito), hands the test ``account.auth``, and gives the lease back when the worker's session
ends; a killed worker's lease is free again by the liveness rules. A profile without a pool
skips the tests that ask for it; a pool that is exhausted, unreadable or whose login fails
errors them with one line. Thin glue over :mod:`harness.accounts.pool`.

PYTEST_DONT_REWRITE: engine code, no test assertions (:mod:`harness.pytest_plugin.rewriting`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.accounts.pool import Account, AccountError, AccountPool
from harness.run.session import HarnessSession


@pytest.fixture(scope="session")
def account(harness_session: HarnessSession) -> Iterator[Account]:
    """A pre-provisioned account of the profile's pool, leased for this worker and logged in:
    ``api.get(f"/users/{account.uid}", auth=account.auth)``. Never created, changed or
    deleted by the harness."""
    profile = harness_session.profile
    if profile.accounts is None:
        pytest.skip(
            f"profile [{profile.name}] names no account pool: add [{profile.name}.accounts] "
            f"(docs/adapters.md, 'Production smoke runs')"
        )
    pool = AccountPool(
        profile,
        harness_session.api,
        harness_session.redactor,
        harness_session.state_dir,
        str(harness_session.namespace),
    )
    try:
        leased = pool.lease_and_login()
    except AccountError as error:
        pool.close()
        failure = harness_session.redactor.text(str(error))
    else:
        failure = ""
    if failure:  # raised here, not in the except: the line alone, with no chained context
        pytest.fail(failure, pytrace=False)
    try:
        yield leased
    finally:
        pool.close()
