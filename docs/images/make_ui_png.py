"""Takes docs/images/ui.png, the README's picture of the web view: the overview of the
demo's store after two sessions of ``muscle-mem demo``, in headless Chromium.

    python docs/images/make_ui_png.py

Needs the ``ui-test`` extra (Playwright) and Debian's chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).with_name("ui.png")
SCRIPT = str(Path(sys.executable).parent / "muscle-mem")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        # The default store, .muscle_mem/cache.db, in a folder of its own.
        for _ in range(2):  # a first session, and the next day's
            subprocess.run([SCRIPT, "demo"], cwd=folder, check=True, capture_output=True)
        server = subprocess.Popen(
            [SCRIPT, "ui", "--port", "0"], cwd=folder, stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split()[2]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
                page = browser.new_page(viewport={"width": 1100, "height": 790})
                page.goto(url)
                page.screenshot(path=str(OUT))
                browser.close()
        finally:
            server.send_signal(signal.SIGINT)  # as Ctrl-C stops it
            server.wait(timeout=10)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
