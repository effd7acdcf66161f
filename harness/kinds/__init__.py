"""Resource kinds: the things a run creates in an environment, and how the engine reaches them.

``base`` is the adapter contract (:class:`Kind`, :class:`Found`, :class:`Setting`);
``registry`` finds every kind a profile's run knows (the engine's, the adapters', the
declared ones) for the plugin and every CLI command alike; ``declared`` implements kinds
declared in ``environments.toml`` without code; ``queue`` (a worker's events subscription) and
``lease`` (a run's lease) are the engine's own kinds; ``dynamo`` holds DynamoDB helpers.
No kind of any particular service lives here: those belong to adapters.
"""

from harness.kinds.base import Found, Kind, Outcome, Setting
from harness.kinds.registry import load_kinds

__all__ = ["Found", "Kind", "Outcome", "Setting", "load_kinds"]
