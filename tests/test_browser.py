"""The report and the demo page in a real headless Chromium (Debian's chromium and
chromium-driver, which .ci/run installs): every image loads, no console error, the sample button
shows a new grid. Screenshots go to the test's folder, and to $GENLAB_SCREENSHOTS when set."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
           "chromium-driver; .ci/run installs them)")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def runs(digit_runs):
    return digit_runs


def wait_for(condition, timeout: float = 30.0, explain=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for the page {explain()}")


def image_states(driver) -> list:
    return driver.execute_script("return Array.from(document.images).map("
                                 "i => [i.id || i.alt, i.complete, i.naturalWidth])")


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver, path: Path) -> None:
    driver.save_screenshot(str(path))
    if os.environ.get("GENLAB_SCREENSHOTS"):
        target = Path(os.environ["GENLAB_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / path.name)


# Every image that has a source has loaded (the demo's reconstruction has none until an upload).
ALL_IMAGES_LOADED = ("const shown = Array.from(document.images).filter(i => i.getAttribute('src'));"
                     "return shown.length > 0 && shown.every(i => i.complete && i.naturalWidth > 0)")
# The demo fetches its samples and its interpolation independently, so either may arrive first:
# wait until both have a source and have loaded.
DEMO_IMAGES_LOADED = ("const shown = Array.from(document.images).filter(i => i.getAttribute('src'));"
                      "return shown.length === 2 && shown.every(i => i.complete && i.naturalWidth > 0)")


def test_report_renders_every_image_without_console_errors(browser, runs, tmp_path):
    out = tmp_path / "report"
    assert run_cli("report", runs / "vae", runs / "dcgan", "-o", out).returncode == 0
    browser.get((out / "report.html").as_uri())
    wait_for(lambda: browser.execute_script(ALL_IMAGES_LOADED), explain=lambda: image_states(browser))
    # vae: curves, val, reconstructions, samples, interpolation; dcgan: curves, equilibrium,
    # samples, interpolation; and the two sample grids side by side.
    assert browser.execute_script("return document.images.length") == 11
    assert browser.title == "genlab report"
    assert console_errors(browser) == []
    screenshot(browser, tmp_path / "report.png")


def test_demo_sample_button_shows_a_new_grid(browser, runs, tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "genlab", "serve", str(runs / "vae"),
                                str(runs / "dcgan"), "--port", "0"], cwd=REPO,
                               stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", process.stderr.readline()).group(0)
        browser.get(url)
        wait_for(lambda: browser.execute_script(DEMO_IMAGES_LOADED), explain=lambda: image_states(browser))
        first = browser.find_element("id", "samples").get_attribute("src")
        browser.find_element("id", "sample").click()
        wait_for(lambda: browser.find_element("id", "samples").get_attribute("src") != first)
        wait_for(lambda: browser.execute_script(DEMO_IMAGES_LOADED))
        assert browser.find_element("id", "seedinfo").text == "seed 2"
        assert browser.find_element("id", "error").text == ""
        assert console_errors(browser) == []
        screenshot(browser, tmp_path / "demo.png")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
