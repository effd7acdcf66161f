"""A real PostgreSQL server for the project's tests: one per test session, on loopback.

``HARNESS_TEST_POSTGRES_URL`` names a server that is already running (``make mutate`` starts
one for all its mutants); otherwise the session starts its own (:mod:`sandbox.postgres`) and
always stops it. Where the server is not installed the tests that need it skip with one line
— never under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sandbox.postgres import INSTALL_HINT, PostgresServer, find_bindir

URL_VARIABLE = "HARNESS_TEST_POSTGRES_URL"


def missing(what: str = "PostgreSQL") -> None:
    """Skip (fail under CI=true) for a part this machine does not have."""
    message = f"{what} is not installed here: {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a database the session may use as it likes."""
    given = os.environ.get(URL_VARIABLE)
    if given:
        yield given
        return
    if find_bindir() is None:
        missing()
    server = PostgresServer()
    try:
        server.start()
        yield server.url()
    finally:
        server.stop()
