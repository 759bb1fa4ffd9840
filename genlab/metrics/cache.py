"""Reference features cached on disk under a key of everything that made them.

The key hashes the data set, split, sample count, how the samples were chosen, a hash of the
chosen images' bytes, the preprocessing, the network's weights hash and the precision, so a
cached file is never used for different inputs. Files are written atomically; one that does not
load, or whose stored key or checksum does not match, is recomputed (with a warning), not trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Callable

import torch

from genlab.errors import GenlabError
from genlab.fsutil import atomic_save, user_cache_dir

CACHE_ENV = "GENLAB_FID_CACHE"


def cache_dir() -> Path:
    """$GENLAB_FID_CACHE, else <user cache>/genlab/fid-stats."""
    return Path(os.environ.get(CACHE_ENV) or user_cache_dir() / "fid-stats")


def cache_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _checksum(features: torch.Tensor) -> str:
    return hashlib.sha256(features.contiguous().numpy().tobytes()).hexdigest()


def cache_path(fields: dict, label: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
    return cache_dir() / f"{safe}-{cache_key(fields)[:20]}.pt"


def load_cached(fields: dict, label: str, warn: Callable[[str], None]) -> torch.Tensor | None:
    """The cached features for exactly these fields, or None (missing or not trustworthy)."""
    path = cache_path(fields, label)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        features = payload["features"]
        ok = (payload["key"] == cache_key(fields) and isinstance(features, torch.Tensor)
              and features.dtype == torch.float32 and features.dim() == 2
              and payload["checksum"] == _checksum(features))
    except Exception:  # a torn or foreign file: any failure to read it means "recompute"
        ok = False
    if not ok:
        warn(f"the cached reference features {path} are damaged or not what their name says; "
             "recomputing them")
        return None
    return features


def save_cached(fields: dict, label: str, features: torch.Tensor,
                warn: Callable[[str], None]) -> Path | None:
    """Store the features; a cache that cannot be written costs time next run, not this score."""
    path = cache_path(fields, label)
    features = features.to("cpu", torch.float32).contiguous()
    payload = {"key": cache_key(fields), "fields": json.dumps(fields, sort_keys=True),
               "features": features, "checksum": _checksum(features)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(path, lambda handle: torch.save(payload, handle))
    except (OSError, GenlabError) as exc:
        warn(f"cannot cache the reference features in {path.parent} ({exc}); they will be "
             f"computed again next time (set ${CACHE_ENV} to a writable folder)")
        return None
    return path
