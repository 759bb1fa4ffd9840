"""The embedded default: the 1,797 real 8x8 handwritten digits that ship inside scikit-learn.

They need no download, so `genlab demo` always has real data. They are the UCI "optical
recognition of handwritten digits" test set: 8x8 images with 17 grey levels (0-16). Splits:
`train` is the first 1,500 images, `test` the remaining 297.
"""

from __future__ import annotations

import numpy as np
import torch

from genlab.data.memory import ImageSet
from genlab.data.transforms import resize_uint8

TRAIN_COUNT = 1500
PARTS = {"train": slice(0, TRAIN_COUNT), "test": slice(TRAIN_COUNT, 1797)}
COUNTS = {split: part.stop - part.start for split, part in PARTS.items()}


def load_digits_split(split: str, image_size: int) -> ImageSet:
    from sklearn.datasets import load_digits  # imported lazily: sklearn is slow to import

    part = PARTS[split]  # the registry (genlab.data.load_split) has checked the name
    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8), 0..255
    labels = digits.target.astype(np.int64)
    images = torch.from_numpy(pixels[part]).unsqueeze(1)  # (N, 1, 8, 8)
    return ImageSet(images=resize_uint8(images, image_size), labels=torch.from_numpy(labels[part]),
                    dataset="digits", split=split, source="scikit-learn (embedded)")
