"""What genlab tells its user while it works: one object passed to whatever talks, instead of a
module-level flag. Under torchrun only rank 0 talks (every process would say the same); errors
come from all of them, raised as GenlabError."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Console:
    quiet: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stderr)

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        self.say(f"warning: {message}")
