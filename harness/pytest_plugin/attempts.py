"""Where a test is in its attempts: the stash keys a retried test carries.

Owns the three keys shared by the run's plugin (:mod:`harness.pytest_plugin.plugin`: a
retried attempt's data is never kept), its fixtures (a retried test's data is new each
time) and the history's retries (:mod:`harness.history.retries`, which sets them). Only keys:
it must never hold logic, so everything may import it without an import cycle.
"""

from __future__ import annotations

import pytest

#: The attempt a test is in (1, 2, …), on its item.
ATTEMPT = pytest.StashKey[int]()
#: This attempt failed and will be retried: its resources are cleaned, never kept.
RETRYING = pytest.StashKey[bool]()
#: The attempt failed on a protected target's refusal: never retried.
REFUSED = pytest.StashKey[bool]()
