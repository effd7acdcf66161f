"""Entry point for ``python -m tests.services.shop_service``."""

import sys

from .app import main

if __name__ == "__main__":
    sys.exit(main())
