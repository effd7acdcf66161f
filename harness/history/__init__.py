"""Runs with memory: what every run did, kept in a history store, and what follows from it.

:mod:`~harness.history.records` (what one run and each of its tests leave behind),
:mod:`~harness.history.store` (SQLite under ``.harness/`` or an S3 prefix),
:mod:`~harness.history.classify` (new failure, still failing, flaky, fixed …),
:mod:`~harness.history.quarantine` (the repository's quarantine file),
:mod:`~harness.history.shards` (balanced CI shards by recorded durations),
:mod:`~harness.history.retries` (safe retries through the ledger),
:mod:`~harness.history.merge` (shards' reports joined into one) and
:mod:`~harness.history.plugin` (the pytest side).
"""
