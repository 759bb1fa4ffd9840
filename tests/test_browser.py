"""The report and the demo page in a real headless Chromium (Debian's chromium and
chromium-driver, which .ci/run installs): every image loads, no console error, the sample button
shows a new grid. Screenshots go to the test's folder, and to $GENLAB_SCREENSHOTS when set."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def demo_page(browser, run_folders):
    """`genlab serve RUN...` on a free port, its page open in the browser with every image
    loaded; the server is stopped with Ctrl-C afterwards."""
    process = subprocess.Popen([sys.executable, "-m", "genlab", "serve", *map(str, run_folders),
                                "--port", "0"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", process.stderr.readline()).group(0)
        browser.get(url)
        wait_for(lambda: browser.execute_script(DEMO_IMAGES_LOADED), explain=lambda: image_states(browser))
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_demo_sample_button_shows_a_new_grid(browser, runs, tmp_path):
    with demo_page(browser, [runs / "vae", runs / "dcgan"]):
        first = browser.find_element("id", "samples").get_attribute("src")
        browser.find_element("id", "sample").click()
        wait_for(lambda: browser.find_element("id", "samples").get_attribute("src") != first)
        wait_for(lambda: browser.execute_script(DEMO_IMAGES_LOADED))
        assert browser.find_element("id", "seedinfo").text == "seed 2"
        assert browser.find_element("id", "error").text == ""
        assert console_errors(browser) == []
        screenshot(browser, tmp_path / "demo.png")


def test_demo_reconstructs_an_upload_with_every_encoder_run_side_by_side(browser, runs, tmp_path):
    """On the tests' 20-step runs, or on GENLAB_DEMO_RUNS (os.pathsep-separated run folders) with
    GENLAB_DEMO_UPLOAD: the docs' screenshot of the CelebA demo is this test's (GENLAB_SCREENSHOTS)."""
    from PIL import Image

    demo_runs = (os.environ["GENLAB_DEMO_RUNS"].split(os.pathsep)
                 if os.environ.get("GENLAB_DEMO_RUNS") else [runs / "vae", runs / "vae"])
    upload = Path(os.environ.get("GENLAB_DEMO_UPLOAD") or tmp_path / "photo.png")
    if not upload.is_file():  # a photo of another size than the runs': cropped and resized
        Image.effect_noise((90, 110), 60).convert("RGB").save(upload)
    with demo_page(browser, demo_runs):
        browser.find_element("id", "file").send_keys(str(upload.resolve()))

        def reconstruction_width(button: str) -> int:
            before = browser.find_element("id", "reconstruction").get_attribute("src")
            browser.find_element("id", button).click()
            wait_for(lambda: browser.find_element("id", "reconstruction").get_attribute("src")
                     not in (None, "", before), timeout=120)
            return wait_for(lambda: browser.execute_script(
                "const i = document.getElementById('reconstruction');"
                "return i.complete && i.naturalWidth"), timeout=60)
        one = reconstruction_width("reconstruct")          # the upload and one reconstruction
        every = reconstruction_width("reconstructall")     # the upload and one per encoder run
        encoders = len(demo_runs)
        assert every / one == pytest.approx((encoders + 1) / 2, rel=0.1)
        assert browser.find_element("id", "error").text == ""
        assert console_errors(browser) == []
        screenshot(browser, tmp_path / "demo-every-run.png")
