"""Refresh the panel screenshots in ``docs/images/`` (idle, invalid field, training, reconstructed).

They are taken by the real-browser test (``tests/test_browser.py``: JupyterLab + Debian's
chromium + Playwright, quick settings), so what the README shows is what that test checks::

    python docs/make_screenshots.py          # about a minute on 2 CPU cores

Needs what ``.ci/install-test-extras.sh`` installs (chromium, playwright, jupyterlab).
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
NAMES = ("panel_idle.png", "panel_invalid_field.png", "panel_training.png", "panel_reconstructed.png")


def main() -> int:
    env = dict(os.environ, PTYCHO_NB_SCREENSHOTS=str(IMAGES), PTYCHO_NB_QUICK="1", CI="true")
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          "tests/test_browser.py"], cwd=ROOT, env=env)
    if rc == 0:
        for name in NAMES:
            print(f"wrote {IMAGES / name}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
