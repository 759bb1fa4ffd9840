"""Wall time of `genlab --help` and `genlab train vaegan --help`, each a fresh process as a user
starts it (the console script in the venv), and whether torch was imported along the way.

Usage:  .venv/bin/python benchmarks/help_time.py [--repeats 10]
Prints the median and the fastest of the repeats for each command.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

GENLAB = Path(sys.executable).with_name("genlab")
COMMANDS = (["--help"], ["train", "vaegan", "--help"])


def wall_time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([str(GENLAB), *argv], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def imports_torch(argv: list[str]) -> bool:
    code = ("import sys, contextlib, io, genlab.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        genlab.cli.main({argv!r})\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    wall_time(["--help"])  # the first start reads the files from disk: not what is measured
    for argv in COMMANDS:
        times = [wall_time(argv) for _ in range(args.repeats)]
        print(f"genlab {' '.join(argv):<22} median {statistics.median(times):.3f} s, fastest "
              f"{min(times):.3f} s over {args.repeats} runs; torch imported: "
              f"{'yes' if imports_torch(argv) else 'no'}")


if __name__ == "__main__":
    main()
