"""`genlab datasets` (what is found where) and `genlab prepare` (images -> one HDF5 file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.cli.flags import count
from genlab.console import Console


def register(commands, console: Console) -> None:
    prepare = commands.add_parser(
        "prepare", help="convert a folder of images (or aligned CelebA) to one HDF5 file",
        description="Centre-crop and resize every image of a folder (searched recursively; for "
        "an aligned CelebA folder, the JPEGs of img_align_celeba/) and write them as one uint8 "
        "N x 3 x S x S dataset 'images' in an HDF5 file, so training starts without decoding "
        "JPEGs.")
    prepare.add_argument("source", metavar="SRC", help="folder of images or aligned CelebA")
    prepare.add_argument("-o", "--output", required=True, help="HDF5 file to write (.h5)")
    prepare.add_argument("--size", type=count(1, 4096), default=64,
                         help="output images are SIZE x SIZE (default: 64)")
    prepare.add_argument("--crop", type=count(1, 100_000), default=None,
                         help="centre crop side before resizing (default: 148 for aligned "
                         "CelebA, the shorter side otherwise)")
    prepare.add_argument("--split", choices=["train", "val", "test"], default=None,
                         help="aligned CelebA only: one split of list_eval_partition.txt "
                         "(default: every image)")
    prepare.add_argument("--overwrite", action="store_true", help="replace an existing output")
    prepare.set_defaults(handler=lambda args: prepare_command(args, console))

    datasets = commands.add_parser("datasets", help="which data sets are found where",
                                   description="List the data sets genlab knows, their splits "
                                   "and where their files are found.")
    datasets.add_argument("--data-dir", help="look in this folder only, as `genlab train` would")
    datasets.set_defaults(handler=lambda args: datasets_command(args, console))


def prepare_command(args: argparse.Namespace, console: Console) -> int:
    from genlab.data.files import prepare_hdf5
    from genlab.fsutil import check_output_file

    check_output_file(args.output)
    n = prepare_hdf5(Path(args.source), Path(args.output), args.size, args.crop, args.split,
                     args.overwrite, console.say)
    print(f"{args.output}: {n} images, uint8 {n} x 3 x {args.size} x {args.size}")
    return 0


def datasets_command(args: argparse.Namespace, console: Console) -> int:
    from genlab.config import DataConfig
    from genlab.data import DATASETS, check_data_dir

    cfg = DataConfig(data_dir=args.data_dir)
    check_data_dir(cfg)
    for entry in DATASETS.values():
        print(f"{entry.name}: {entry.title}")
        for split, images in entry.counts.items():
            print(f"  {split:<6} {images:>6} images  {entry.locate(cfg, split)}")
    return 0
