"""The progress display: a live bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import os
import pty

from genlab.train.progress import Progress


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(start=0, total=10, batch_size=32, stream=stream, interval=0.0)
    for _ in range(3):
        progress.advance()
    progress.loss(123.456)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("step 1/10") and "img/s" in lines[0] and "eta" in lines[0]
    assert lines[-1].startswith("step 3/10  loss 123.5")


def test_live_bar_on_a_terminal_even_one_reporting_no_size():
    master, slave = pty.openpty()  # a fresh pty reports 0 columns and 0 rows
    with os.fdopen(slave, "w") as stream:
        progress = Progress(start=5, total=10, batch_size=32, stream=stream)
        for _ in range(5):
            progress.advance()
        progress.loss(99.0)
        progress.close()
    output = os.read(master, 65536).decode(errors="replace")
    os.close(master)
    assert "10/10" in output and "step" in output and "loss=99" in output and "img_s" in output
