"""The progress display: a live bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import os
import pty
import select

from genlab.train.progress import Progress


def _drain(master: int, timeout: float = 10.0) -> bytes:
    """Everything written to a pty whose slave side is closed. The kernel hands pty output to
    the master asynchronously, so one read can come back short; read until EOF (EIO on Linux)."""
    chunks = []
    try:
        while select.select([master], [], [], timeout)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the slave is closed and everything has been read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    return b"".join(chunks)


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(start=0, total=10, batch_size=32, stream=stream, interval=0.0)
    for _ in range(3):
        progress.advance()
    progress.loss({"loss": 123.456})
    progress.advance()
    progress.loss({"discriminator_loss": 0.4321, "generator_loss": 3.21})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("step 1/10") and "img/s" in lines[0] and "eta" in lines[0]
    assert lines[3].startswith("step 4/10  loss 123.5  ")
    assert lines[-1].startswith("step 4/10  discriminator_loss 0.4321  generator_loss 3.21  ")


def test_live_bar_on_a_terminal_even_one_reporting_no_size():
    master, slave = pty.openpty()  # a fresh pty reports 0 columns and 0 rows
    with os.fdopen(slave, "w") as stream:
        progress = Progress(start=5, total=10, batch_size=32, stream=stream)
        for _ in range(5):
            progress.advance()
        progress.loss({"loss": 99.0})
        progress.close()
    output = _drain(master).decode(errors="replace")
    assert "10/10" in output and "step" in output and "loss=99" in output and "img_s" in output
