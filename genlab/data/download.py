"""Download a file from a list of mirrors, checksummed and atomic (stdlib only).

The bytes are streamed into a temporary ``.part`` file in the destination folder itself (so the
final ``os.replace`` is a same-filesystem atomic rename) while their md5 is computed. Only a
complete download with the right checksum ever appears under its final name; anything else,
including Ctrl-C, leaves no file behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from genlab.errors import DownloadError
from genlab.fsutil import fsync_dir, new_file_mode

__all__ = ["RemoteFile", "md5_of", "download"]

_CHUNK = 1 << 20  # 1 MiB: few syscalls, small memory footprint.


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its name on the mirrors and the md5 of its exact bytes."""

    name: str  # file name, e.g. "train-images-idx3-ubyte.gz"
    md5: str  # expected md5 hex digest of the downloaded bytes


class _LocalWriteError(Exception):
    """Writing to dest_dir failed: another mirror cannot help, so stop at once."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _one_line(text: object) -> str:
    """Collapse whitespace so a server's or OS's message cannot break the one-sentence rule."""
    return " ".join(str(text).split()).rstrip(".")


def _new_md5():  # -> hashlib's private _Hash type
    # md5 is a checksum here, not security; usedforsecurity=False keeps FIPS builds working.
    return hashlib.md5(usedforsecurity=False)


def md5_of(path: str | os.PathLike) -> str:
    """Return the md5 hex digest of a file, read in 1 MiB chunks."""
    name = os.path.abspath(os.fspath(path))
    h = _new_md5()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except FileNotFoundError as e:
        raise DownloadError(f"{name} does not exist, so its checksum cannot be computed.") from e
    except OSError as e:
        raise DownloadError(f"{name} could not be read ({_one_line(e.strerror or e)}).") from e
    return h.hexdigest()


def _reason_for(error: BaseException, url: str, received: int, expected: int | None, timeout: float) -> str:
    """A short, one-line description of why one try failed."""
    host = urllib.parse.urlsplit(url).netloc or url
    if isinstance(error, urllib.error.HTTPError):
        return f"the server answered HTTP {error.code} ({_one_line(error.reason)}) for {url}"
    if isinstance(error, urllib.error.URLError):
        # Raised by urlopen before any byte arrived: refused, DNS failure, connect timeout.
        inner = error.reason
        detail = getattr(inner, "strerror", None) or inner
        return f"could not reach host {host} ({_one_line(detail)})"
    if isinstance(error, (TimeoutError, socket.timeout)):
        of = f" of {expected}" if expected is not None else ""
        return f"timed out after {received}{of} bytes (no data from {host} for {timeout:g} s)"
    if isinstance(error, http.client.IncompleteRead):
        got = received + len(error.partial)
        of = f" of {expected}" if expected is not None else ""
        return f"connection dropped after {got}{of} bytes"
    if isinstance(error, (ConnectionError, http.client.HTTPException, OSError)):
        of = f" of {expected}" if expected is not None else ""
        return f"connection dropped after {received}{of} bytes ({_one_line(error) or type(error).__name__})"
    return f"bad mirror URL {url!r} ({_one_line(error)})"  # ValueError from urllib


def _stream(url: str, out, md5: str, timeout: float) -> str | None:
    """Fetch url into the open file out; return None on success, else why this try failed."""
    received = 0
    expected: int | None = None
    h = _new_md5()
    # A fresh opener per call reads the proxy settings from the environment each time.
    opener = urllib.request.build_opener()
    try:
        request = urllib.request.Request(
            url,
            # identity: the md5 is of the file's bytes, not of a transfer encoding of them.
            headers={"User-Agent": "genlab", "Accept-Encoding": "identity"},
        )
        with opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.strip().isdigit():
                expected = int(length)
            # read1 returns what has arrived (up to 1 MiB) instead of blocking for a full
            # chunk, so the byte count in a "dropped after N bytes" message is accurate.
            read = getattr(response, "read1", response.read)
            while True:
                chunk = read(_CHUNK)
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as e:
                    raise _LocalWriteError(e) from e
                h.update(chunk)
                received += len(chunk)
    except _LocalWriteError:
        raise
    # OSError covers URLError/HTTPError, timeouts and socket errors (ConnectionResetError...);
    # HTTPException covers IncompleteRead and malformed responses; ValueError a bad URL.
    except (OSError, http.client.HTTPException, ValueError) as e:
        if isinstance(e, urllib.error.HTTPError):
            e.close()  # an HTTPError holds the open response; release the socket now
        return _reason_for(e, url, received, expected, timeout)
    # http.client returns b"" rather than raising when the peer closes early with
    # Content-Length set, so a short body has to be caught here.
    if expected is not None and received < expected:
        return f"connection dropped after {received} of {expected} bytes"
    if expected is not None and received > expected:
        return f"the server sent {received} bytes but announced {expected}"
    got = h.hexdigest()
    if got != md5.lower():
        return f"checksum mismatch: expected md5 {md5.lower()}, got {got}"
    return None


def _try_mirror(url: str, remote: RemoteFile, dest: Path, timeout: float) -> str | None:
    """One try: download to a temp file in dest, and rename it into place if it checks out."""
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest, prefix=f".{remote.name}.", suffix=".part")
    except OSError as e:
        raise _LocalWriteError(e) from e
    tmp = Path(tmp_name)
    placed = False
    try:
        with os.fdopen(fd, "wb") as out:
            reason = _stream(url, out, remote.md5, timeout)
            if reason is None:
                try:
                    # mkstemp makes the file 0600; give it the mode an ordinary new file gets.
                    os.chmod(tmp, new_file_mode())
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as e:
                    raise _LocalWriteError(e) from e
        if reason is not None:
            return reason
        try:
            os.replace(tmp, dest / remote.name)
        except OSError as e:
            raise _LocalWriteError(e) from e
        placed = True
        fsync_dir(dest)
        return None
    finally:
        # Runs on failure, on errors and on KeyboardInterrupt alike: never leave a .part behind.
        if not placed:
            try:
                tmp.unlink()
            except OSError:
                pass  # already gone, or cannot do better; the original error is more useful


def download(
    remote: RemoteFile,
    mirrors: Sequence[str],
    dest_dir: str | os.PathLike,
    *,
    timeout: float = 30.0,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Download remote into dest_dir from the first mirror that serves the right bytes.

    Returns the final path. An existing file of the same name is replaced only by a download
    that passed its checksum. Raises DownloadError if dest_dir is unusable or every mirror fails.
    """
    if not remote.name or Path(remote.name).name != remote.name or remote.name in (".", ".."):
        raise ValueError(f"RemoteFile.name must be a plain file name, not {remote.name!r}")
    dest = Path(os.path.abspath(os.fspath(dest_dir)))
    target = dest / remote.name
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(
            f"{dest} could not be created ({_one_line(e.strerror or e)}) to download {remote.name} into; "
            "choose another folder."
        ) from e
    if not os.access(dest, os.W_OK | os.X_OK):
        raise DownloadError(f"{dest} is not writable, so {remote.name} cannot be downloaded into it; "
                            "fix its permissions or choose another folder.")
    if isinstance(mirrors, str):
        mirrors = [mirrors]  # a lone URL would otherwise be iterated character by character
    if not mirrors:
        raise DownloadError(f"No mirror is configured for {target}; place the file in {dest} yourself.")

    reason = "no mirror was tried"
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + remote.name
        if log is not None:
            log(f"downloading {url}")
        try:
            failure = _try_mirror(url, remote, dest, timeout)
        except _LocalWriteError as e:
            raise DownloadError(
                f"Could not write {target} ({_one_line(e.error.strerror or e.error)}); "
                f"free some space or fix permissions, or place the file in {dest} yourself."
            ) from e.error
        if failure is None:
            return target
        reason = failure
        if log is not None:
            log(f"failed: {reason}")
    n = len(mirrors)
    raise DownloadError(
        f"Could not download {target} (tried {n} mirror{'s' if n != 1 else ''}; the last failed with "
        f"{reason}); place the file in {dest} yourself.",
        reason=reason,
    )
