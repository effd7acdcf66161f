"""``python -m tests.simulate``: see :mod:`tests.simulate.cli`."""

import sys

from tests.simulate.cli import main

sys.exit(main())
