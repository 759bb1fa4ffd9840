"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

from genlab.errors import GenlabError


def user_cache_dir() -> Path:
    """<$XDG_CACHE_HOME or ~/.cache>/genlab: downloads and cached FID features."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "genlab"


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable; best effort (not every OS or filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    """The process umask, read without os.umask() (which would briefly change it for all threads)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022  # the usual default where /proc is not available


def new_file_mode() -> int:
    """The mode open() would give a new file (0666 less the umask); mkstemp's files are 0600."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync it and rename it onto `path`.

    On any error the temporary file is removed and `path` is left as it was. A full disk becomes
    a GenlabError naming the file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as exc:
        raise GenlabError(cannot_write(path, exc)) from None
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise GenlabError(cannot_write(path, exc)) from None
        raise
    fsync_dir(path.parent)


TMP_SUFFIX = ".tmp"


def cannot_write(path: Path, exc: OSError) -> str:
    """One sentence for a write that failed: a full disk, a read-only or forbidden folder."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"the disk is full while writing {path}; the previous version of that file is "
                "intact, free some space and run the same command again")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {path} ({exc.strerror}); choose a folder you can write to, or "
                "make this one writable")
    if exc.errno == errno.EISDIR:
        return f"{path} is a folder; name a file to write"
    return f"cannot write {path} ({exc.strerror or exc}); check the path and the free space"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that writes killed mid-way left in `folder` (and its
    checkpoints/); only the folder's one writer may call this (genlab.run.RunLock)."""
    removed = []
    for candidate in [*Path(folder).glob(f".*{TMP_SUFFIX}"),
                      *Path(folder).glob(f"checkpoints/.*{TMP_SUFFIX}")]:
        with contextlib.suppress(OSError):
            candidate.unlink()
            removed.append(candidate)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_save(path: str | os.PathLike, save: Callable[[IO], None]) -> None:
    """Atomically write whatever `save(handle)` writes (torch.save, PIL's Image.save, ...)."""
    with atomic_open(path, "wb") as handle:
        save(handle)
