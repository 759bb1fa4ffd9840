"""The `genlab` command: one module per command group, each command's flags beside its handler;
a command parses, calls one library function and prints. Bad input ends with one sentence on
stderr and exit code 2, never a traceback, and nothing is written before every flag and the data
have been checked."""

from __future__ import annotations

import os
import sys
from typing import Sequence

from genlab import __version__
from genlab.cli import data, images, scores, share, train
from genlab.cli.flags import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, Parser
from genlab.console import Console
from genlab.errors import GenlabError

GROUPS = (train, scores, images, share, data)


def build_parser(console: Console | None = None) -> Parser:
    parser = Parser(prog="genlab", description="Train, evaluate and explain image generative "
                    "models: the homework's VAE and DCGAN, and the VAE/GAN of Larsen et al.")
    parser.add_argument("--version", action="version", version=f"genlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for group in GROUPS:
        group.register(commands, console or Console())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = argv  # what a stopped training prints to resume it
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except GenlabError as exc:
        print(f"genlab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Nobody reads stdout any more; point it at /dev/null so that the interpreter's flush at
        # exit does not raise again (the recipe of Python's `signal` documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
