"""Images from files: a folder of image files (searched recursively) or a .npz array, read as
uint8 (N, C, H, W) batches. Used by `genlab fid` to score any generator's output."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from genlab.data.transforms import to_uint8
from genlab.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def image_files(folder: Path) -> list[Path]:
    """Every image file under `folder`, in sorted path order."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


# Pixels an image file may have: decoding is bounded before it starts (an 8000 x 8000 RGB image
# decodes to 192 MB; a 389 KB PNG can claim 20000 x 20000, 1.2 GB).
MAX_IMAGE_PIXELS = 64_000_000


def open_image(source, name: str, max_pixels: int = MAX_IMAGE_PIXELS,
               unreadable: str | None = None) -> Image.Image:
    """An image file (a path or a binary file object) opened without decoding its pixels, its size
    checked against max_pixels; DataError naming it otherwise (`unreadable`: the sentence for a
    file that is no image)."""
    try:
        with warnings.catch_warnings():  # PIL's own bomb warning: the size check below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except Image.DecompressionBombError:
        raise DataError(f"{name} claims far more pixels than genlab decodes ({max_pixels:,} at "
                        "most); resize it first") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(unreadable or f"{name} is not a readable image ({exc}); remove it or "
                        "replace it") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise DataError(f"{name} is {width} x {height} pixels, over the {max_pixels:,} genlab "
                        "decodes; resize it first")
    return image


def open_rgb(path: Path) -> Image.Image:
    """The image as RGB; grey images get their value in all three channels, alpha is dropped."""
    with open_image(path, str(path)) as image:
        try:
            return image.convert("RGB")
        except (OSError, ValueError) as exc:  # truncated or damaged pixel data
            raise DataError(f"{path} is not a readable image ({exc}); remove it or replace "
                            "it") from None


def _read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8."""
    return np.asarray(open_rgb(path))


def _npz_array(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            name = next((n for n in ("images", "arr_0") if n in names),
                        names[0] if len(names) == 1 else None)
            if name is None:
                raise DataError(f"{path} holds several arrays ({', '.join(names)}) and none is "
                                "called 'images'; save the images as 'images'")
            return archive[name]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from None


def _as_nchw_uint8(array: np.ndarray, path: Path) -> torch.Tensor:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3}; uint8 0..255 or float 0..1."""
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4 or array.shape[1] not in (1, 3) or len(array) == 0:
        raise DataError(f"{path} holds an array of shape {array.shape}; expected images "
                        "(N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3")
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array))
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise DataError(f"{path} holds float images outside [0, 1]; save them as uint8 "
                            "0..255 or as floats in [0, 1]")
        # Rounded to 0..255 as saving a PNG would, so both sides of a comparison are quantised.
        return to_uint8(torch.from_numpy(array))
    raise DataError(f"{path} holds {array.dtype} images; expected uint8 0..255 or floats in [0, 1]")


class ImageSource:
    """A folder of images or a .npz array, counted up front and read in batches."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._array: torch.Tensor | None = None
        if self.path.is_dir():
            self._files = image_files(self.path)
            if not self._files:
                raise DataError(f"{self.path} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        elif self.path.suffix.lower() == ".npz" and self.path.is_file():
            self._array = _as_nchw_uint8(_npz_array(self.path), self.path)
        else:
            raise DataError(f"{self.path} is neither a folder of images nor a .npz file")

    def __len__(self) -> int:
        return len(self._array) if self._array is not None else len(self._files)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """uint8 (n, C, H, W) batches; a batch ends early where the image size changes."""
        if self._array is not None:
            yield from self._array.split(batch_size)
            return
        pending: list[np.ndarray] = []
        for path in self._files:
            image = _read_rgb(path)
            if pending and (image.shape != pending[0].shape or len(pending) == batch_size):
                yield torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2)  # NHWC -> NCHW
                pending = []
            pending.append(image)
        if pending:
            yield torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2)


# --- cropped and resized to a square -----------------------------------------------------------

def crop_and_resize(path: Path, size: int, crop: int | None) -> np.ndarray:
    """One image file as (3, size, size) uint8 (see `square_rgb`)."""
    return square_rgb(open_rgb(path), size, crop)


def square_rgb(rgb: Image.Image, size: int, crop: int | None) -> np.ndarray:
    """An RGB image as (3, size, size) uint8: centre-cropped to `crop` x `crop` (or to its shorter
    side when crop is None or larger than the image), then resized with PIL's bilinear filter
    with antialiasing, as torchvision's CenterCrop + Resize do on a PIL image."""
    w, h = rgb.size
    side = min(w, h) if crop is None else min(crop, w, h)
    left, top = int(round((w - side) / 2.0)), int(round((h - side) / 2.0))
    square = rgb.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.BILINEAR)).transpose(2, 0, 1)


def files_as_images(files: list[str | Path], image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Image files -> uint8 (N, C, H, W) at a run's image shape, each centre-cropped to a square."""
    from genlab.data.transforms import convert_channels

    c, h, _ = image_shape
    return convert_channels(torch.from_numpy(np.stack([crop_and_resize(Path(f), h, None)
                                                       for f in files])), c)


def folder_batches(files: list[Path], size: int, crop: int | None,
                   batch_size: int = 256) -> Iterator[torch.Tensor]:
    """uint8 (n, 3, size, size) batches of `files`, cropped and resized."""
    for start in range(0, len(files), batch_size):
        yield torch.from_numpy(np.stack([crop_and_resize(p, size, crop)
                                         for p in files[start:start + batch_size]]))
