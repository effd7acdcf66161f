"""The pytest plugin (the ``pytest11`` entry point): thin hooks over :mod:`harness.run.lifecycle`
(``plugin``) and the generic fixtures every installed harness gives plain pytest (``fixtures``).
"""
