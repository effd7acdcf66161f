"""The fault simulation of the run lifecycle (issue 20 "What to build" 1, issue 25 item 6).

A driver that starts real ``harness run`` processes against one sandbox, stops each at a
named phase (the engine's fault points, :mod:`harness.faultpoints`), injects one fault there
— signals, a file-size limit, dropped connections — and then checks every invariant, every
time. ``python -m tests.simulate`` (``make simulate``) runs the matrix; the e2e tier runs a
seeded slice (``tests/e2e/test_simulation.py``). Modules, by what they own:

- :mod:`tests.simulate.matrix`: the scenarios (phase x fault x workers x seed) that make sense;
- :mod:`tests.simulate.faults`: what each fault does to which process;
- :mod:`tests.simulate.processes`: the processes of a scenario, found and, when left, ended;
- :mod:`tests.simulate.digest`: an independent digest of the environment, its diff, restore;
- :mod:`tests.simulate.invariants`: the checks and the violations they find;
- :mod:`tests.simulate.runner`: the sandbox, the scenario projects, one scenario from start to
  verdict; :mod:`tests.simulate.multirun`: the scenarios of several commands at once;
- :mod:`tests.simulate.table`: the printed table and violation list;
  :mod:`tests.simulate.cli`: the command line.

It is test code: it imports the engine, never the other way round.
"""
