"""`genlab serve`: the demo page's endpoints, its refusals, and a clean start and stop."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from genlab.serve import MAX_UPLOAD_BYTES, create_app, load_runs


@pytest.fixture(scope="module")
def runs(digit_runs):
    return digit_runs


@pytest.fixture(scope="module")
def client(runs):
    app = create_app(load_runs([str(runs / "vae"), str(runs / "dcgan")], warn=pytest.fail))
    return app.test_client()


def png(response) -> np.ndarray:
    assert response.status_code == 200 and response.mimetype == "image/png", response.data[:200]
    return np.asarray(Image.open(io.BytesIO(response.data)))


def test_page_has_the_three_tools_and_no_network_reference(client):
    page = client.get("/").get_data(as_text=True)
    for element in ('id="sample"', 'id="file"', 'id="reconstruct"', 'id="t"', "vae (step 20)",
                    "dcgan (step 20)"):
        assert element in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_samples_follow_the_seed(client):
    a, b, again = (png(client.get(f"/api/sample?run=0&seed={s}")) for s in (1, 2, 1))
    assert np.array_equal(a, again) and not np.array_equal(a, b)
    assert png(client.get("/api/sample?run=1&seed=1")).shape == a.shape  # the DCGAN too


def test_reconstruction_of_an_upload_and_the_refusals(client):
    upload = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(upload, format="PNG")
    pair = png(client.post("/api/reconstruct?run=0",
                           data={"image": (io.BytesIO(upload.getvalue()), "x.png")}))
    assert pair.shape[1] > 1.9 * pair.shape[0]  # input and reconstruction side by side
    for data, status, words in [
        ({"image": (io.BytesIO(b"not an image"), "x.png")}, 400, "not an image"),
        ({}, 400, "no file"),
        ({"image": (io.BytesIO(b"\0" * (MAX_UPLOAD_BYTES + 1)), "big.png")}, 413, "over 10 MB"),
    ]:
        response = client.post("/api/reconstruct?run=0", data=data)
        assert response.status_code == status and words in response.get_json()["error"]
    gan = client.post("/api/reconstruct?run=1",
                      data={"image": (io.BytesIO(upload.getvalue()), "x.png")})
    assert gan.status_code == 400 and "no encoder" in gan.get_json()["error"]
    assert client.get("/api/sample?run=7").status_code == 400


def test_the_slider_walks_from_one_end_to_the_other(client):
    start = png(client.get("/api/interpolate?run=0&seed=3&t=0"))
    end = png(client.get("/api/interpolate?run=0&seed=3&t=1"))
    scale = start.shape[0] // (32 + 4)                             # one row of 32 px tiles

    def tile(grid, column):                                        # genlab.grid's layout
        left = (2 + column * 34) * scale
        return grid[2 * scale:34 * scale, left:left + 32 * scale]

    assert np.array_equal(tile(start, 1), tile(start, 0))          # t = 0: the point is z1
    assert np.array_equal(tile(end, 1), tile(end, 2))              # t = 1: the point is z2
    assert not np.array_equal(tile(start, 0), tile(start, 2))
    assert client.get("/api/interpolate?run=0&t=5").status_code == 400


def test_the_server_starts_on_localhost_and_stops_cleanly(runs):
    process = subprocess.Popen([sys.executable, "-m", "genlab", "serve", str(runs / "vae"),
                                "--port", "0"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200 and b"genlab demo" in response.read()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "genlab demo stopped" in process.stderr.read()
    finally:
        process.kill()
