"""The engine's place in pytest's assertion rewriting: out of it.

pytest rewrites the asserts of every module of a distribution that ships a plugin, and where
bytecode is not written (``PYTHONDONTWRITEBYTECODE``, common on CI runners) it parses and
compiles each of them from source again in every process and xdist worker: ~0.1 s of CPU per
process for the engine's fifty-odd modules. The engine holds no test assertions, so it is
imported the plain way. This module must never change how a user's tests, conftests or
adapter modules are rewritten, and imports nothing (``harness/__init__`` calls it first).
"""

from __future__ import annotations

import sys

#: The engine's import package (the sandbox is ``harness.sandbox`` once installed).
ENGINE_PACKAGE = "harness"


def import_engine_plainly() -> list[str]:
    """Unmark the engine's modules in pytest's rewriting hook, if one is installed; the names
    unmarked. The mark set is pytest's own (``AssertionRewritingHook._must_rewrite``): when
    a pytest release renames it, nothing is unmarked and the engine is rewritten as before —
    slower, never wrong. The modules pytest registers as plugins by name later (this
    package's ``plugin`` and ``fixtures``, ``harness.reporting.plugin``) carry
    ``PYTEST_DONT_REWRITE`` in their docstrings, pytest's own opt-out."""
    unmarked: list[str] = []
    for finder in sys.meta_path:
        marked = getattr(finder, "_must_rewrite", None)
        if type(finder).__name__ != "AssertionRewritingHook" or not isinstance(marked, set):
            continue
        for name in sorted(marked):
            if name.split(".", 1)[0] == ENGINE_PACKAGE:
                marked.discard(name)
                unmarked.append(name)
        cache = getattr(finder, "_marked_for_rewrite_cache", None)
        if isinstance(cache, dict):
            for name in [n for n in cache if n.split(".", 1)[0] == ENGINE_PACKAGE]:
                del cache[name]
    return unmarked
