"""`genlab report` (one page about runs) and `genlab serve` (the live demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.cli.flags import count
from genlab.console import Console


def register(commands, console: Console) -> None:
    report = commands.add_parser(
        "report", help="one HTML page (and a Markdown twin) about one or more runs",
        description="Write DIR/report.html (self-contained: images embedded, no network "
        "reference) and DIR/report.md: a comparison table and the runs' samples side by side, "
        "then each run's settings, every curve it logged, GAN equilibrium diagnostics, its "
        "last grids, an interpolation, its figures and scores.")
    report.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    report.add_argument("-o", "--output", default="report", help="folder (default: report)")
    report.add_argument("--no-interpolation", action="store_true",
                        help="skip decoding an interpolation grid per run")
    report.set_defaults(handler=lambda args: report_command(args, console))

    serve = commands.add_parser(
        "serve", help="a local web page to sample, reconstruct and interpolate (live demo)",
        description="Serve a page on http://127.0.0.1:PORT/ to draw samples from the runs, "
        "reconstruct an uploaded image and slide along an interpolation; Ctrl-C stops it.")
    serve.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    serve.add_argument("--port", type=count(0, 65535), default=8000,
                       help="port on localhost, 1-65535 (default: 8000; 0 picks a free one)")
    serve.set_defaults(handler=lambda args: serve_command(args, console))


def report_command(args: argparse.Namespace, console: Console) -> int:
    from genlab.fsutil import check_output_folder
    from genlab.viz.report import build_report

    check_output_folder(args.output, "-o")
    html_path, md_path = build_report([Path(r) for r in args.runs], Path(args.output),
                                      interpolation=not args.no_interpolation, log=console.say)
    print(f"{'report:':<12} {html_path} (self-contained)")
    print(f"{'markdown:':<12} {md_path}")
    return 0


def serve_command(args: argparse.Namespace, console: Console) -> int:
    from genlab.serve import load_runs, serve

    serve(load_runs(args.runs, console.warn), "127.0.0.1", args.port, console.say)
    return 0
