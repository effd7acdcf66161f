"""env-harness: idempotent integration tests against a real deployed environment.

The engine, and the only package the distribution installs. It knows no particular service:
a team teaches it theirs through an adapter (:mod:`harness.adapter`, or kinds declared in
``environments.toml``). It never imports a project's ``fixtures/`` or ``suites/``.
"""

from harness.pytest_plugin.rewriting import import_engine_plainly

import_engine_plainly()  # under pytest: the engine's modules skip assertion rewriting
