"""The ``harness`` command: ``main`` (run, sweep, recover, residue, init, env), ``doctor`` and
``init`` (the scaffold of a new test project).
"""
