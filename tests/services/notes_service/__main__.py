"""Entry point for ``python -m tests.services.notes_service`` and ``python path/to/notes_service``.

Run as a folder, Python puts the folder itself first on ``sys.path`` and gives this module no
package; then the folder's parent goes there instead and the folder is imported as a package,
whatever it is called, so the service runs from a copy anywhere.
"""

import importlib
import sys
from pathlib import Path

if __package__:
    from .app import main
else:
    folder = Path(__file__).resolve().parent
    sys.path[0] = str(folder.parent)
    main = importlib.import_module(f"{folder.name}.app").main

if __name__ == "__main__":
    sys.exit(main())
