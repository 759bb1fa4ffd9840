"""Tests for genlab.data.download against a real HTTP server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from genlab.data.download import RemoteFile, download, md5_of
from genlab.errors import DownloadError

NAME = "train-images-idx3-ubyte.gz"
PAYLOAD = os.urandom(1024) * 3  # 3072 bytes, not a multiple of anything in particular


@dataclass
class Server:
    """The running test server: its base URL and the folder it serves files from."""

    url: str
    root: Path
    release: threading.Event

    def mirror(self, mode: str) -> str:
        """Base URL of a mirror that behaves according to mode (see Handler.do_GET)."""
        return f"{self.url}/{mode}/"


class Handler(BaseHTTPRequestHandler):
    """Serves files from `root`; the first path segment picks how:

    ok       -- the file, with Content-Length
    nolength -- the file without Content-Length, then closes the connection
    drop     -- Content-Length N, N//2 bytes, then the socket is closed (a dropped connection)
    stall    -- Content-Length N, N//2 bytes, then silence until the test ends
    anything else -- 404
    """

    root: Path
    release: threading.Event
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        mode, _, name = self.path.lstrip("/").partition("/")
        path = self.root / name
        if mode not in ("ok", "nolength", "drop", "stall") or not name or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if mode == "nolength":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "ok":
            self.wfile.write(data)
            return
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        if mode == "stall":
            self.release.wait(10)
        # Half a body, then FIN: to the client this is a connection dropped mid-download.
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # the client hangs up on purpose
        pass


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    # A proxy from the environment must not intercept requests to our local server.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()
    (root / NAME).write_bytes(PAYLOAD)
    release = threading.Event()
    handler = type("BoundHandler", (Handler,), {"root": root, "release": release})
    httpd = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", root, release)
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "data" / "mnist"  # does not exist yet: download() must create it


def good() -> RemoteFile:
    return RemoteFile(NAME, hashlib.md5(PAYLOAD).hexdigest())


def dead_port_url() -> str:
    """A 127.0.0.1 URL on a port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def assert_one_line(msg: str) -> None:
    assert "\n" not in msg


def test_good_download(server: Server, dest: Path) -> None:
    logs: list[str] = []
    path = download(good(), [server.mirror("ok")], dest, log=logs.append)
    assert path == dest / NAME
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.iterdir()) == [NAME]  # no .part leftovers
    assert logs == [f"downloading {server.url}/ok/{NAME}"]
    assert md5_of(path) == good().md5
    if os.name == "posix":  # not the 0600 of the temp file: the mode any new file would get
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_download_without_content_length(server: Server, dest: Path) -> None:
    path = download(good(), [server.mirror("nolength").rstrip("/")], dest)
    assert path.read_bytes() == PAYLOAD
    assert [p.name for p in dest.iterdir()] == [NAME]


def test_uppercase_md5_accepted(server: Server, dest: Path) -> None:
    remote = RemoteFile(NAME, good().md5.upper())
    assert download(remote, [server.mirror("ok")], dest).read_bytes() == PAYLOAD


def test_wrong_checksum(server: Server, dest: Path) -> None:
    remote = RemoteFile(NAME, "0" * 32)
    with pytest.raises(DownloadError) as info:
        download(remote, [server.mirror("ok")], dest)
    msg = str(info.value)
    assert_one_line(msg)
    assert "checksum mismatch" in msg and "0" * 32 in msg and good().md5 in msg
    assert str(dest / NAME) in msg and f"place the file in {dest} yourself" in msg
    assert list(dest.iterdir()) == []  # neither the final name nor a temp file


def test_dropped_connection(server: Server, dest: Path) -> None:
    logs: list[str] = []
    with pytest.raises(DownloadError) as info:
        download(good(), [server.mirror("drop")], dest, log=logs.append)
    msg = str(info.value)
    assert_one_line(msg)
    assert f"connection dropped after {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes" in msg
    assert "tried 1 mirror;" in msg
    assert list(dest.iterdir()) == []
    assert len(logs) == 2 and logs[1].startswith("failed: connection dropped")


def test_404_then_good_mirror(server: Server, dest: Path) -> None:
    logs: list[str] = []
    path = download(good(), [server.mirror("missing"), server.mirror("ok")], dest, log=logs.append)
    assert path.read_bytes() == PAYLOAD
    assert [p.name for p in dest.iterdir()] == [NAME]
    assert len(logs) == 3 and "404" in logs[1]


def test_drop_then_good_mirror(server: Server, dest: Path) -> None:
    path = download(good(), [server.mirror("drop"), server.mirror("ok")], dest)
    assert path.read_bytes() == PAYLOAD
    assert [p.name for p in dest.iterdir()] == [NAME]


def test_all_mirrors_fail_reports_count_and_last_reason(server: Server, dest: Path) -> None:
    with pytest.raises(DownloadError) as info:
        download(good(), [server.mirror("drop"), server.mirror("missing")], dest)
    msg = str(info.value)
    assert_one_line(msg)
    assert "tried 2 mirrors" in msg and "HTTP 404" in msg
    assert list(dest.iterdir()) == []


def test_unreachable_mirror_fails_quickly(dest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(good(), [dead_port_url()], dest, timeout=5)
    assert time.monotonic() - start < 2
    msg = str(info.value)
    assert_one_line(msg)
    assert "could not reach host" in msg
    assert list(dest.iterdir()) == []


def test_stalled_server_times_out(server: Server, dest: Path) -> None:
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(good(), [server.mirror("stall")], dest, timeout=0.3)
    assert time.monotonic() - start < 2
    assert f"timed out after {len(PAYLOAD) // 2} of {len(PAYLOAD)} bytes" in str(info.value)
    assert list(dest.iterdir()) == []


def test_malformed_mirror_url_is_a_failed_try(server: Server, dest: Path) -> None:
    path = download(good(), ["not a url", server.mirror("ok")], dest)
    assert path.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="bad mirror URL"):
        download(good(), ["not a url"], dest)


def test_file_url_mirror(tmp_path: Path, dest: Path) -> None:
    local = tmp_path / "local-mirror"
    local.mkdir()
    (local / NAME).write_bytes(PAYLOAD)
    assert download(good(), [local.as_uri()], dest).read_bytes() == PAYLOAD


def test_existing_file_untouched_when_redownload_fails(server: Server, dest: Path) -> None:
    dest.mkdir(parents=True)
    existing = dest / NAME
    existing.write_bytes(b"the user's own copy")
    before = existing.stat()
    with pytest.raises(DownloadError):
        download(good(), [server.mirror("drop"), server.mirror("missing")], dest)
    with pytest.raises(DownloadError):
        download(RemoteFile(NAME, "f" * 32), [server.mirror("ok")], dest)
    assert existing.read_bytes() == b"the user's own copy"
    assert existing.stat().st_mtime_ns == before.st_mtime_ns and existing.stat().st_ino == before.st_ino
    assert [p.name for p in dest.iterdir()] == [NAME]


def test_existing_file_replaced_on_success(server: Server, dest: Path) -> None:
    dest.mkdir(parents=True)
    (dest / NAME).write_bytes(b"stale")
    assert download(good(), [server.mirror("ok")], dest).read_bytes() == PAYLOAD
    assert [p.name for p in dest.iterdir()] == [NAME]


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer (POSIX)")
def test_keyboard_interrupt_mid_download_leaves_nothing(server: Server, dest: Path) -> None:
    seen_at_interrupt: list[str] = []

    def interrupt(signum, frame):
        seen_at_interrupt.extend(p.name for p in dest.iterdir())
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.3)  # fires while the client waits on the stalled body
    try:
        with pytest.raises(KeyboardInterrupt):
            download(good(), [server.mirror("stall")], dest, timeout=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # The interrupt really came mid-download (a temp file existed), and the temp file is gone.
    assert len(seen_at_interrupt) == 1 and seen_at_interrupt[0].endswith(".part")
    assert list(dest.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_dest_dir_not_writable(server: Server, dest: Path) -> None:
    dest.mkdir(parents=True)
    dest.chmod(0o555)
    try:
        with pytest.raises(DownloadError, match="not writable"):
            download(good(), [server.mirror("ok")], dest)
    finally:
        dest.chmod(0o755)


def test_dest_dir_that_cannot_be_created(server: Server, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(DownloadError) as info:
        download(good(), [server.mirror("ok")], blocker / "sub")
    assert str(blocker / "sub") in str(info.value)
    assert_one_line(str(info.value))


def test_no_mirrors(dest: Path) -> None:
    with pytest.raises(DownloadError, match="place the file in"):
        download(good(), [], dest)


def test_md5_of_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="does not exist"):
        md5_of(tmp_path / "nope")
