"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
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
    refuse_special(path)
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

_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def special_kind(mode: int) -> str | None:
    """What a non-regular, non-folder file is, in words ('a FIFO'); None for a regular file."""
    return next((words for test, words in _KINDS if test(mode)), None)


def refuse_special(path: Path) -> None:
    """Stop before writing over anything but a regular file: renaming onto /dev/null, a FIFO or a
    symbolic link would replace it (lstat: a link is judged itself, not what it points at)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise GenlabError(cannot_write(path, exc)) from None
    if stat.S_ISDIR(mode):
        raise GenlabError(f"{path} is a folder; name a file to write")
    kind = special_kind(mode)
    if kind is not None:
        raise GenlabError(f"{path} is {kind}, not a regular file; genlab writes only regular files, "
                          "so name a new file or a regular one to replace")


def check_output_file(path: str | os.PathLike) -> None:
    """Before any work: `path` can be written (it is new or a regular file, and its folder, or
    the nearest folder above it that exists, takes a new file)."""
    path = Path(path)
    refuse_special(path)
    _check_writable_folder(path.parent, path)


def check_output_folder(folder: str | os.PathLike, flag: str) -> None:
    """Before any work: `folder` is a folder (or can be made as one) that takes new files."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GenlabError(f"{flag} {folder} is a file, not a folder; choose a folder (new or "
                          "existing) for the output")
    _check_writable_folder(folder, folder)


def _check_writable_folder(folder: Path, target: Path) -> None:
    """A probe file made and removed in `folder`, or in the nearest existing folder above it (a
    read-only or full disk is found now, not after the work)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise GenlabError(f"cannot write {target} ({existing} is not a folder); check the path")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".genlab-probe.", suffix=TMP_SUFFIX)
    except OSError as exc:
        raise GenlabError(cannot_write(target, exc)) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def open_regular(path: str | os.PathLike, what: str = "file") -> tuple[int, os.stat_result]:
    """A read-only descriptor of a regular file (symbolic links to one are followed) and its
    stat; a device, FIFO, socket or folder is refused before any read (/dev/zero never ends, a
    FIFO blocks: it is opened non-blocking, so even the open does not wait for a writer)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    info = os.fstat(fd)
    kind = special_kind(info.st_mode)
    if stat.S_ISDIR(info.st_mode) or kind is not None:
        os.close(fd)
        raise GenlabError(f"{what} {path} is {kind or 'a folder'}, not a regular file; replace "
                          "it with the file genlab wrote")
    return fd, info


def read_regular(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes (see open_regular); a larger one is
    refused, and never more than limit + 1 bytes are read (a file growing while read)."""
    fd, info = open_regular(path, what)
    try:
        if info.st_size > limit:
            raise GenlabError(f"{what} {path} is {info.st_size:,} bytes, more than the {limit:,} "
                              "it may hold; it is damaged or not genlab's")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise GenlabError(f"{what} {path} is more than the {limit:,} bytes it may hold; it is "
                          "damaged or not genlab's")
    return data


def read_lines(path: str | os.PathLike, max_line: int = 1 << 20,
               what: str = "log") -> Iterator[bytes | None]:
    """The lines of a regular text file one at a time (memory: one line), without their newline.
    A line longer than `max_line` bytes (a damaged file: a run of zero bytes, say) is skipped
    while read and yielded as None, so callers can count it as damaged."""
    fd, _ = open_regular(path, what)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as handle:
        while True:
            line = handle.readline(max_line + 1)
            if not line:
                return
            if len(line) > max_line and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # the rest of the long line, dropped
                    line = handle.readline(1 << 20)
                yield None
                continue
            yield line.rstrip(b"\r\n")


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
