"""Peak memory of `genlab serve` under near-limit uploads.

What is measured
----------------
A `genlab serve` process (its own Python, as a user starts it) serves a VAE trained for 2 steps on
the embedded digits. Uploads are PNG files of 6300 x 6300 RGB pixels (39.7 million, just under
the server's 40 million; a smooth pattern, so the file stays under the 10 MB upload cap), posted
to /api/reconstruct. PNG is the worst case: a JPEG is decoded at a fraction of its size.

From /proc/PID/status of the server:
* idle: VmRSS once the page has answered (torch and the model loaded);
* one upload: VmHWM (the peak resident size) after one upload, on a fresh server;
* four at once: VmHWM after four uploads posted at the same time, on a fresh server (two are
  decoded at a time, the others wait);
* twenty in a row: VmHWM after 20 uploads one after another, on a fresh server, and VmRSS
  after the last (memory kept after the requests).
The peaks are reported as they are and as the rise over idle.

Usage:  nice -n 19 .venv/bin/python benchmarks/serve_memory.py [--side 6300] [--repeats 20]
(about a minute on 2 busy cores).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def upload_png(side: int) -> bytes:
    """A side x side RGB PNG of a smooth pattern (small as a file, full size decoded)."""
    x = np.arange(side, dtype=np.uint16)
    row = (x % 256).astype(np.uint8)
    pixels = np.empty((side, side, 3), np.uint8)
    pixels[:, :, 0] = row[None, :]
    pixels[:, :, 1] = row[:, None]
    pixels[:, :, 2] = 128
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def post(port: int, data: bytes) -> int:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"u.png\""
            f"\r\nContent-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/reconstruct?run=0", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()
        return response.status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, run: Path):
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, "-m", "genlab", "serve", str(run),
                                         "--port", str(self.port)], cwd=REPO,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit("genlab serve did not start")
                time.sleep(0.3)
        self.idle_mb = status_kb(self.process.pid, "VmRSS") / 1024

    def peak_mb(self) -> float:
        return status_kb(self.process.pid, "VmHWM") / 1024

    def rss_mb(self) -> float:
        return status_kb(self.process.pid, "VmRSS") / 1024

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=6300)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    data = upload_png(args.side)
    print(f"upload: {args.side}x{args.side} RGB PNG, {len(data) / 2**20:.1f} MB as a file, "
          f"{args.side * args.side * 3 / 2**20:.0f} MB decoded as RGB")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "vae"
        subprocess.run([sys.executable, "-m", "genlab", "train", "vae", "--dataset", "digits",
                        "--steps", "2", "--fid-samples", "0", "--run-dir", str(run)], cwd=REPO,
                       check=True, capture_output=True)
        rows = []

        server = Server(run)
        assert post(server.port, data) == 200
        rows.append(("one upload", server.idle_mb, server.peak_mb(), None))
        server.stop()

        server = Server(run)
        codes = []
        threads = [threading.Thread(target=lambda: codes.append(post(server.port, data)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [200] * 4, codes
        rows.append(("four at once", server.idle_mb, server.peak_mb(), None))
        server.stop()

        server = Server(run)
        after = []
        for _ in range(args.repeats):
            assert post(server.port, data) == 200
            after.append(server.rss_mb())
        rows.append((f"{args.repeats} in a row", server.idle_mb, server.peak_mb(), after))
        server.stop()

    print(f"{'case':<14} {'idle MB':>8} {'peak MB':>8} {'peak - idle':>12}  resident after each")
    for name, idle, peak, trace in rows:
        kept = "" if trace is None else (f"  after 1st {trace[0]:.0f}, 10th {trace[min(9, len(trace) - 1)]:.0f}, "
                                         f"last {trace[-1]:.0f} (MB)")
        print(f"{name:<14} {idle:>8.0f} {peak:>8.0f} {peak - idle:>12.0f}{kept}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
