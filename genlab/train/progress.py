"""Training progress: a live bar on a terminal, plain periodic lines otherwise (logs, CI)."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from tqdm import tqdm


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Shows step, loss, images/s and ETA. `advance()` every step, `loss()` when one is known."""

    def __init__(self, start: int, total: int, batch_size: int, stream: TextIO | None = None,
                 interval: float = 15.0):
        self.stream = stream or sys.stderr
        self.start, self.total, self.batch_size, self.interval = start, total, batch_size, interval
        self.step, self.last_losses = start, {}  # none shown before the first logging step
        self.t0 = self.last_line = time.perf_counter()
        self.bar = None
        if getattr(self.stream, "isatty", lambda: False)():
            # A pty that reports a 0x0 size (some CI runners, `script`) makes tqdm hide the bar.
            sized = shutil.get_terminal_size((0, 0)).columns > 0
            self.bar = tqdm(total=total, initial=start, unit="step", file=self.stream,
                            dynamic_ncols=sized, ncols=None if sized else 80,
                            nrows=None if sized else 24, smoothing=0.05)

    def images_per_second(self) -> float:
        elapsed = time.perf_counter() - self.t0
        return (self.step - self.start) * self.batch_size / elapsed if elapsed > 0 else 0.0

    def advance(self) -> None:
        self.step += 1
        if self.bar is not None:
            self.bar.update(1)
        elif time.perf_counter() - self.last_line >= self.interval:
            self._line()

    def loss(self, values: dict[str, float]) -> None:
        """The latest losses to show, by name (one per phase: a GAN shows both networks')."""
        self.last_losses = dict(values)
        if self.bar is not None:
            shown = {name: f"{value:.4g}" for name, value in values.items()}
            self.bar.set_postfix(**shown, img_s=f"{self.images_per_second():.0f}", refresh=False)

    def _line(self) -> None:
        self.last_line = time.perf_counter()
        rate = self.images_per_second()
        steps_per_s = rate / self.batch_size if rate else 0.0
        eta = (self.total - self.step) / steps_per_s if steps_per_s else 0.0
        parts = [f"step {self.step}/{self.total}"]
        parts += [f"{name} {value:.4g}" for name, value in self.last_losses.items()]
        parts += [f"{rate:.0f} img/s", f"eta {_clock(eta)}"]
        print("  ".join(parts), file=self.stream, flush=True)

    def write(self, message: str) -> None:
        """Print a message without breaking the bar."""
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.step != self.start:
            self._line()
