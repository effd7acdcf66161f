"""Wires the harness plugin and its fixtures into the integration suites (see pytest.ini)."""

pytest_plugins = [
    "harness.pytest_plugin.plugin",
    "fixtures.core",
    "fixtures.users",
    "fixtures.events",
]
