"""Pre-provisioned accounts: how tests log in where nothing may be created (production).

A profile's ``[NAME.accounts]`` table names a pool of existing accounts whose credentials live
in AWS Secrets Manager or SSM Parameter Store, never in the profiles file (:mod:`.spec`); a
worker leases one account for its run, through the profile's ``lease_table`` or a local lock
(:mod:`.leases`); then reads its credentials and logs in through the route the profile allows
or a Cognito app client, without ever creating, changing or deleting the account
(:mod:`.pool`). The ``account`` fixture (:mod:`harness.pytest_plugin.accounts`) and ``harness
doctor`` are built on it.
"""
