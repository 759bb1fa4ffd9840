"""`genlab serve`: a local web page for the lab's live demo, on Flask.

Draw samples from a run, reconstruct an uploaded image (models with an encoder), and slide along
a straight path between two latents. Flask (with its server, Werkzeug, which TensorBoard already
installs) because it is small, well kept and synchronous: a demo serves one person, every request
is one forward pass, and nothing here needs an async framework or a UI toolkit's hundreds of MB.
The page is one HTML document with inline script and style: no network reference.
"""

from __future__ import annotations

import io
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from werkzeug.exceptions import HTTPException

from genlab.data.celeba import upload_crop_fraction
from genlab.data.folder import open_image, square_rgb
from genlab.data.transforms import convert_channels, to_model_range, to_unit_range
from genlab.errors import GenlabError
from genlab.run import load_run
from genlab.grid import grid_to_pil, make_grid

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000   # decoded per upload (a 40 MP photo: 120 MB as RGB)
DECODES = 2                      # uploads decoded at once; more wait their turn
SAMPLES = 16


@dataclass
class LoadedRun:
    name: str
    model: torch.nn.Module
    image_shape: tuple[int, int, int]
    step: int
    encodes: bool
    crop_fraction: float | None = None  # how its training images were cut from theirs


def _png(images: torch.Tensor, nrow: int) -> bytes:
    """Images (N, C, H, W) in [0, 1] -> PNG bytes of their grid, upscaled for the screen."""
    picture = grid_to_pil(make_grid(images, nrow=nrow))
    scale = max(1, 256 // images.shape[-1])
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def image_from_upload(data: bytes, shape: tuple[int, int, int],
                      crop_fraction: float | None = None) -> torch.Tensor:
    """An uploaded file -> uint8 (1, C, H, W) at the run's size, or a GenlabError saying what is
    wrong with it. The central square is kept (`crop_fraction` of the shorter side: CelebA's
    148 of 178, as its faces were prepared), at most MAX_UPLOAD_PIXELS decoded.

    Memory: one decoded copy of the upload at most (its pixels times its bytes per pixel,
    120 MB for a 40 MP RGB image); a JPEG is decoded at a fraction of its size (draft), and
    any image is box-reduced in its own mode to about twice the crop it gives before any copy
    (conversion to RGB, crop, resize) is made.
    """
    if not data:
        raise GenlabError("the upload is empty; choose an image file (PNG or JPEG)")
    _, h, _ = shape
    try:
        with open_image(io.BytesIO(data), "the upload", MAX_UPLOAD_PIXELS, unreadable=(
                "the upload is not an image PIL can read; choose a PNG or JPEG file")) as image:
            image.draft("RGB", (h * 4, h * 4))  # JPEG: decoded at 1/2, 1/4 or 1/8 of its size
            image.load()
            rgb = _reduced_rgb(image, 2 * h, crop_fraction)
    except (OSError, ValueError):
        raise GenlabError("the upload is not an image PIL can read; choose a PNG or JPEG "
                          "file") from None
    c = shape[0]
    crop = None if crop_fraction is None else round(min(rgb.size) * crop_fraction)
    pixels = torch.from_numpy(square_rgb(rgb, h, crop=crop).copy())  # (3, H, W)
    return convert_channels(pixels[None], c)  # (1, C, H, W)


def _reduced_rgb(image: Image.Image, least: int, crop_fraction: float | None) -> Image.Image:
    """A decoded image box-reduced by the largest whole factor that keeps its centre crop (the
    shorter side times `crop_fraction`) at least `least` pixels a side, then as RGB. Reducing
    comes first: it reads the decoded pixels once and makes a small image, where converting
    first would copy the whole image."""
    if image.mode in ("1", "P", "PA", "I;16", "I;16B", "I;16L", "CMYK", "YCbCr", "LAB", "HSV"):
        # Modes reduce() does not take: a palette or 1-bit image is 1 byte a pixel, so its RGB
        # copy is at most 3x a small decoded image (the large ones are RGB already).
        image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info
                              else "RGB")
    crop = min(image.size) * (crop_fraction or 1.0)
    factor = max(1, int(crop // least))
    if factor > 1:
        image = image.reduce(factor)
    return image if image.mode == "RGB" else image.convert("RGB")


def _return_freed_memory() -> None:
    """Hand the heap memory an upload's decode freed back to the system (glibc's malloc_trim):
    each request runs in a new thread whose malloc arena otherwise keeps its largest decode, so
    the server's resident size would creep up with repeated uploads. A no-op elsewhere."""
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):  # not glibc: nothing to trim
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


def _natural(text: str, largest: int) -> int | None:
    """A query's whole number from 0 to `largest`, or None: ASCII digits only (str.isdigit also
    accepts '²' and other scripts' digits, which int() refuses or reads), and at most as many
    digits as `largest` has (int() refuses strings of over 4,300 digits, and needs no more)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(largest)):
        return None
    value = int(text)
    return value if value <= largest else None


def create_app(runs: list[LoadedRun]):
    from flask import Flask, Response, jsonify, request

    app = Flask("genlab")
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES

    decoding = threading.BoundedSemaphore(DECODES)

    def chosen() -> LoadedRun:
        index = _natural(request.values.get("run", "0"), len(runs) - 1)
        if index is None:
            raise GenlabError(f"run must be a number from 0 to {len(runs) - 1}")
        return runs[index]

    def seed() -> int:
        value = _natural(request.values.get("seed", "0"), 2**63 - 1)
        if value is None:
            raise GenlabError("seed must be an integer from 0 to 2^63 - 1")
        return value

    @app.errorhandler(GenlabError)
    def refused(error: GenlabError):
        return jsonify(error=str(error)), 400

    @app.errorhandler(413)
    def too_large(_):
        return jsonify(error=f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MB; choose a "
                             "smaller image"), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):  # every answer is JSON, an unknown page's too
        return jsonify(error=f"{error.name}: {error.description}"), error.code

    @app.errorhandler(Exception)
    def failed(error: Exception):
        return jsonify(error=f"the server could not answer ({type(error).__name__}); try "
                             "another image or restart genlab serve"), 500

    def upload() -> bytes:
        received = request.files.get("image")
        if received is None:
            raise GenlabError("no file in the upload; send it as the form field 'image'")
        return received.read()

    @app.get("/")
    def page():
        return Response(_page(runs), mimetype="text/html")

    @app.get("/api/sample")
    def sample():
        run = chosen()
        generator = torch.Generator().manual_seed(seed())
        with torch.no_grad():
            images = run.model.decode(run.model.sample_latents(SAMPLES, generator))
        return Response(_png(to_unit_range(images, run.model.data_range), 4),
                        mimetype="image/png")

    @app.post("/api/reconstruct")
    def reconstruct():
        """The upload and its reconstruction by the chosen run, or (run=all) by every run with
        an encoder, side by side in one row."""
        if request.values.get("run") == "all":  # the runs of the first encoder's image shape
            encoders = [r for r in runs if r.encodes]
            chosen_runs = [r for r in encoders if r.image_shape == encoders[0].image_shape]
        else:
            chosen_runs = [chosen()]
        if not chosen_runs or not chosen_runs[0].encodes:
            raise GenlabError(f"{chosen_runs[0].name if chosen_runs else 'no run'} has no encoder "
                              "to reconstruct with; choose a vae or vaegan run")
        data = upload()
        if not decoding.acquire(timeout=30):
            raise GenlabError("the server is busy decoding other uploads; try again")
        try:
            first = chosen_runs[0]
            x = image_from_upload(data, first.image_shape, first.crop_fraction)
            row = [x[0].float() / 255]  # the upload as the models see it, then each one's
            with torch.no_grad():
                for run in chosen_runs:
                    batch = to_model_range(x, run.model.data_range)
                    row.append(to_unit_range(run.model.reconstruct(batch), run.model.data_range)[0])
        finally:
            decoding.release()
            del data
            _return_freed_memory()
        return Response(_png(torch.stack(row), len(row)), mimetype="image/png")

    @app.get("/api/interpolate")
    def interpolate():
        run = chosen()
        try:
            t = float(request.values.get("t", 0.0))
        except ValueError:
            raise GenlabError("t must be a number") from None
        if not -1.0 <= t <= 2.0:
            raise GenlabError("t must be between -1 and 2 (0 and 1 are the two ends)")
        generator = torch.Generator().manual_seed(seed())
        z1, z2 = run.model.sample_latents(2, generator).chunk(2)   # (1, D) each
        with torch.no_grad():
            images = run.model.decode(torch.cat([z1, z1 + t * (z2 - z1), z2]))
        return Response(_png(to_unit_range(images, run.model.data_range), 3),
                        mimetype="image/png")

    return app


def _page(runs: list[LoadedRun]) -> str:
    import html

    options = "".join(f'<option value="{i}">{html.escape(r.name)} (step {r.step})</option>'
                      for i, r in enumerate(runs))
    return PAGE.replace("{{options}}", options)


PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>genlab demo</title>
<link rel="icon" href="data:,">
<style>body{font-family:sans-serif;max-width:900px;margin:2em auto;padding:0 1em}
section{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}
img{image-rendering:pixelated;border:1px solid #ddd;max-width:100%}img:not([src]){display:none}
#error{color:#b00}</style>
</head><body><h1>genlab demo</h1>
<p>Run: <select id="run">{{options}}</select></p><p id="error" role="alert"></p>
<section><h2>Samples</h2><button id="sample">sample</button> <span id="seedinfo"></span><br>
<img id="samples" alt="samples"></section>
<section><h2>Reconstruct an image</h2><input type="file" id="file" accept="image/*">
<button id="reconstruct">reconstruct</button> <button id="reconstructall">with every
run</button><br><img id="reconstruction" alt="input and reconstructions"></section>
<section><h2>Interpolate</h2><input type="range" id="t" min="0" max="1" step="0.05" value="0.5">
<span id="tvalue">t = 0.5</span> <button id="newpair">new pair</button><br>
<img id="walk" alt="z1, the point at t, z2"></section>
<script>
let seed = 0, pair = 0;
const $ = (id) => document.getElementById(id);
const run = () => $("run").value;
function show(img, response) {
  if (!response.ok) { return response.json().then((j) => { $("error").textContent = j.error; }); }
  $("error").textContent = "";
  return response.blob().then((b) => { img.src = URL.createObjectURL(b); });
}
function sample() {
  seed += 1; $("seedinfo").textContent = "seed " + seed;
  fetch(`/api/sample?run=${run()}&seed=${seed}`).then((r) => show($("samples"), r));
}
function walk() {
  $("tvalue").textContent = "t = " + $("t").value;
  fetch(`/api/interpolate?run=${run()}&seed=${pair}&t=${$("t").value}`).then((r) => show($("walk"), r));
}
$("sample").onclick = sample;
$("t").oninput = walk;
$("newpair").onclick = () => { pair += 1; walk(); };
$("run").onchange = () => { sample(); walk(); };
function reconstruct(which) {
  const form = new FormData();
  if ($("file").files.length) { form.append("image", $("file").files[0]); }
  fetch(`/api/reconstruct?run=${which}`, {method: "POST", body: form})
    .then((r) => show($("reconstruction"), r));
}
$("reconstruct").onclick = () => reconstruct(run());
$("reconstructall").onclick = () => reconstruct("all");
sample(); walk();
</script></body></html>"""


def load_runs(folders: list[str], warn: Callable[[str], None]) -> list[LoadedRun]:
    loaded = []
    for folder in folders:
        run = load_run(folder, torch.device("cpu"), warn)
        config, model, step = run.config, run.model, run.step
        loaded.append(LoadedRun(Path(folder).resolve().name, model, tuple(config.image_shape),
                                step, model.can("encoder"), upload_crop_fraction(config.data)))
    return loaded


def serve(runs: list[LoadedRun], host: str, port: int, say: Callable[[str], None]) -> None:
    """Serve until Ctrl-C or SIGTERM, then close the socket and return."""
    from werkzeug.serving import make_server

    try:
        server = make_server(host, port, create_app(runs), threaded=True)
    except OSError as exc:
        raise GenlabError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another "
                          "--port") from None
    # Request threads are joined by server_close(): a daemon thread still writing its log line
    # to stderr while the interpreter exits aborts the process (seen as exit -6 under load).
    server.daemon_threads, server.block_on_close = False, True
    # shutdown() waits for serve_forever() to return, so it cannot run in the signal handler
    # (the main thread); a plain thread calls it and is joined before the interpreter exits (a
    # daemon thread still running at exit can abort the process).
    stopper = threading.Thread(target=server.shutdown, name="genlab-serve-stop")

    def stop(signum, frame):
        if not stopper.is_alive() and stopper.ident is None:
            stopper.start()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    say(f"genlab demo on http://{host}:{server.server_port}/ ({len(runs)} run(s)); Ctrl-C stops it")
    try:
        server.serve_forever()
    finally:
        if stopper.ident is not None:
            stopper.join()
        server.server_close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    say("genlab demo stopped")
