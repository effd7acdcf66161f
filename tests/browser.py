"""A real browser for the project's tests: headless Chromium from Debian's packages, driven
by selenium through Debian's chromium-driver (``make browser`` installs both).

:func:`chromium` starts it with a new, empty profile folder (inside the caller's temporary
folder) and the flags this closed network needs (no background connections, no QUIC), and
always quits it. Where Chromium is missing the test skips with one line — except under
``CI=true``, where it fails: CI must run it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if not missing:
        return
    message = (
        f"{' and '.join(missing)} not found: `make browser` installs Debian's chromium and "
        f"chromium-driver"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def chromium(folder: Path) -> Iterator[Any]:
    """A headless Chromium under selenium, its profile a new folder under ``folder``."""
    require_chromium()
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium never fetches a driver here
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = folder / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(
        options=options, service=Service(CHROMEDRIVER, log_output=str(folder / "driver.log"))
    )
    try:
        yield driver
    finally:
        driver.quit()
