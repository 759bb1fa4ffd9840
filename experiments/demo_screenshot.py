"""A screenshot of `genlab serve` on trained runs, for README: the page as a user sees it after
one click on "sample" and one uploaded image reconstructed (by the first run given).

It drives the same headless Chromium as tests/test_browser.py (Debian's chromium and
chromium-driver); the tests take the same page on 20-step runs and assert on it, this script only
takes the picture.

Usage:  .venv/bin/python experiments/demo_screenshot.py RUN [RUN ...] --upload digit.png
        -o demo.png
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--upload", type=Path, required=True, help="image to reconstruct")
    parser.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--wait", type=float, default=4.0,
                        help="seconds to let each request finish before the next action")
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1900"):
        options.add_argument(flag)
    server = subprocess.Popen([sys.executable, "-m", "genlab", "serve", *map(str, args.runs),
                               "--port", "0"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    driver = None
    try:
        # serve's first line on stderr names its address (--port 0: a free port).
        url = re.search(r"http://127\.0\.0\.1:\d+/", server.stderr.readline()).group(0)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        driver.get(url)
        time.sleep(args.wait)
        driver.find_element("id", "file").send_keys(str(args.upload.resolve()))
        driver.find_element("id", "reconstruct").click()
        time.sleep(args.wait)
        driver.find_element("id", "sample").click()
        time.sleep(args.wait)
        driver.save_screenshot(str(args.out))
    finally:
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
