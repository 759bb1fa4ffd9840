"""Full-state checkpoints, written atomically, checksummed, loaded without unpickling code.

Each checkpoint is two files in `<run>/checkpoints/`:
  step-00001000.pt    torch.save of a dict of tensors, numbers, strings, lists and dicts only,
                      read back with torch.load(weights_only=True), which refuses anything else
  step-00001000.json  its step, size and sha256, written after the .pt file is in place

The .json file is the commit marker: a .pt without one (a crash between the two renames) is
ignored, and a .pt whose bytes no longer match its sha256 is reported and skipped in favour of
the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

from genlab import __version__
from genlab.errors import GenlabError
from genlab.fsutil import atomic_write_bytes, atomic_write_json, read_regular

FORMAT_VERSION = 1
MAX_MARKER_BYTES = 1 << 16  # a marker .json is a few hundred bytes
_NAME = re.compile(r"^step-(\d{8})\.pt$")


class CheckpointError(GenlabError):
    """A checkpoint file is damaged, of an unknown format, or unsafe to load."""


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step-{step:08d}.pt"


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save_checkpoint(run_dir: Path, step: int, payload: dict[str, Any]) -> Path:
    """Write `payload` as the checkpoint of `step` and return its path."""
    payload = {"format_version": FORMAT_VERSION, "genlab_version": __version__, "step": step,
               **payload}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    path = checkpoint_path(run_dir, step)
    atomic_write_bytes(path, data)
    atomic_write_json(_meta_path(path), {
        "step": step, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "format_version": FORMAT_VERSION, "genlab_version": __version__})
    return path


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Committed checkpoints (those with their .json), oldest first."""
    found = []
    folder = checkpoint_dir(run_dir)
    if folder.is_dir():
        for path in folder.iterdir():
            match = _NAME.match(path.name)
            if match and _meta_path(path).is_file():
                found.append((int(match.group(1)), path))
    return sorted(found)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and verify one checkpoint; CheckpointError says what is wrong with it."""
    path = Path(path)
    if not os.path.lexists(path):  # a mistyped name: not its marker's absence
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        meta = json.loads(read_regular(_meta_path(path), MAX_MARKER_BYTES, "checkpoint marker"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise CheckpointError(f"cannot read checkpoint {path} ({exc})") from None
    except GenlabError as exc:  # not a regular file, or far too large
        raise CheckpointError(str(exc)) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {_meta_path(path)} holds {type(meta).__name__}, not "
                              "the checkpoint's size and sha256")
    size = meta.get("bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CheckpointError(f"checkpoint {_meta_path(path)} records no valid size ({size!r})")
    try:
        # Only a regular file, and never more than its recorded size: a checkpoint replaced by
        # a link to /dev/zero or by a FIFO is refused at once, a grown one without reading it.
        data = read_regular(path, size, "checkpoint")
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path} ({exc})") from None
    except GenlabError as exc:
        raise CheckpointError(f"{exc} (its marker records {size:,} bytes)") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != size or digest != meta.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is damaged: its size or sha256 does not match "
                              f"{_meta_path(path).name}")
    try:
        with warnings.catch_warnings():  # torch's own warnings: the sentence below says it all
            warnings.simplefilter("ignore")
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"it names {named.group(1)}" if named else "unsafe content"
        raise CheckpointError(f"checkpoint {path} holds objects genlab refuses to unpickle "
                              f"({what}); only tensors and plain values are loaded") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        version = payload.get("format_version") if isinstance(payload, dict) else None
        raise CheckpointError(f"checkpoint {path} has format version {version!r}, this genlab "
                              f"reads version {FORMAT_VERSION}")
    missing = [key for key, kind in REQUIRED.items() if not isinstance(payload.get(key), kind)]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks or has damaged {', '.join(missing)}")
    return payload


# What every checkpoint holds, by type (a sha256-sealed file can still have been written wrong).
REQUIRED = {"step": int, "model_name": str, "model": dict, "optimizers": dict, "rng": dict,
            "data_order": dict, "fixed_latents": torch.Tensor}


def latest_checkpoint(run_dir: Path, warn: Callable[[str], None]
                      ) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint that verifies; damaged newer ones are skipped with a warning."""
    checkpoints = list_checkpoints(run_dir)
    for _, path in reversed(checkpoints):
        try:
            return load_checkpoint(path), path
        except CheckpointError as exc:
            warn(f"{exc}; using the checkpoint before it")
    if checkpoints:
        raise CheckpointError(f"every checkpoint in {checkpoint_dir(run_dir)} is damaged; "
                              "delete that folder to start the run again")
    return None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete the weights of all but the newest `keep` checkpoints (0 keeps all); grids stay."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(run_dir)[:-keep]:
        _meta_path(path).unlink(missing_ok=True)  # uncommit first, so no .json points at nothing
        path.unlink(missing_ok=True)


def restore(payload: dict[str, Any], path: Path, model_name: str, model: torch.nn.Module,
            optimizers: dict[str, torch.optim.Optimizer] | None = None,
            misfit: str | None = None, advice: str | None = None) -> None:
    """Load a checkpoint's weights, and the optimisers' states when given, into the run's model,
    once it is known to hold that model: what rebuilding a run (`genlab.run.load_run`), resuming
    one (`Trainer.resume`) and branching one (`Trainer.branch`, with its own `misfit` sentence
    and `advice`) all check. A layer of another shape is named."""
    if payload.get("model_name") != model_name:
        raise GenlabError(f"checkpoint {path} is of a {payload.get('model_name')} model, not the "
                          f"{model_name} its run folder's config.json says; the folder is mixed "
                          "up: use another run folder")
    misfit = misfit or f"checkpoint {path} does not fit the model of its run folder's config.json"
    advice = advice or "the folder is mixed up: use another run folder"
    own, weights = model.state_dict(), payload.get("model")
    for key, tensor in (weights.items() if isinstance(weights, dict) else ()):
        shape = tuple(getattr(tensor, "shape", ()))
        if key in own and shape != tuple(own[key].shape):
            raise GenlabError(f"{misfit} ({key} is {shape} there, {tuple(own[key].shape)} here); "
                              f"{advice}")
    try:
        model.load_state_dict(payload["model"])
        for name, optimizer in (optimizers or {}).items():
            optimizer.load_state_dict(payload["optimizers"][name])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise GenlabError(f"{misfit} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                          f"{advice}") from None
