"""Wires the reference service's fixtures into the integration suites (see pytest.ini).

The harness itself (its lifecycle, options, markers and generic fixtures) comes with the
installed package's pytest plugin; only the adapter's own fixtures are named here."""

pytest_plugins = ["fixtures.users"]
