"""The opt-in checkpoint download (harness/downloads.py, scripts/download_models.py) against a real
HTTPS server on 127.0.0.1 (certificate from trustme) serving small fake files: success, resume,
refused redirects, wrong sizes and hashes, 404, a stall, a zip member, a full disk, Ctrl-C."""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import random
import re
import ssl
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from conftest import REPO
from harness import downloads
from harness.downloads import DownloadError, download, download_all
from comfyui_ssdiff.models.files import CATALOGUE, catalogue_file

PAYLOAD = random.Random(0).randbytes(300_000)
MEMBER = "checkpoints/detection/FT_Epoch_latest.pt"
MEMBER_PAYLOAD = random.Random(1).randbytes(200_000)


SECOND_MEMBER = "checkpoints/restoration/mapping_scratch/latest_net_mapping_net.pth"
SECOND_PAYLOAD = random.Random(2).randbytes(100_000)


def zip_of(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("checkpoints/README.txt", "other files of the archive")
        for member, data in members:
            archive.writestr(member, data)
    return buffer.getvalue()


ARCHIVE = zip_of((MEMBER, MEMBER_PAYLOAD), (SECOND_MEMBER, SECOND_PAYLOAD))
STALL_LIMIT_S = 5.0


class FakeReleases(BaseHTTPRequestHandler):
    """/file.bin (Range requests answered), /no-range.bin (Range ignored), /cut.bin (the first
    request cut after half the bytes), /archive.zip, /stall.bin (headers, then nothing), /page,
    /to-http and /to-https (redirects); anything else 404."""
    server: "FakeServer"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        if self.path in ("/file.bin", "/no-range.bin"):
            self.send_file(PAYLOAD, ranges=self.path == "/file.bin")
        elif self.path == "/archive.zip":
            self.send_file(ARCHIVE)
        elif self.path == "/cut.bin":
            self.send_file(PAYLOAD, cut=not self.server.cut_done)
            self.server.cut_done = True
        elif self.path == "/page":
            self.send_file(b"<html>a release page</html>", content_type="text/html; charset=utf-8")
        elif self.path == "/stall.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.flush()
            self.server.release.wait(STALL_LIMIT_S)
        elif self.path in ("/to-http", "/to-https"):
            self.send_response(302)
            scheme = self.path.removeprefix("/to-")
            self.send_header("Location", f"{scheme}://127.0.0.1:{self.server.server_port}/file.bin")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)

    def send_file(self, data: bytes, ranges: bool = True, cut: bool = False,
                  content_type: str = "application/octet-stream") -> None:
        asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(asked.group(1)) if asked and ranges else 0
        if start >= len(data) > 0 and asked:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:len(data) // 2] if cut else data[start:])


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[tuple[str, str | None]]
    cut_done: bool
    release: threading.Event


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def releases(certificate_authority):
    """The fake release server; yields its https base address."""
    server = FakeServer(("127.0.0.1", 0), FakeReleases)
    server.requests, server.cut_done, server.release = [], False, threading.Event()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def server(releases, monkeypatch) -> FakeServer:
    for proxy in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    releases.requests.clear()
    releases.cut_done = False
    return releases


@pytest.fixture(scope="module")
def trusting(certificate_authority) -> ssl.SSLContext:
    context = ssl.create_default_context()
    certificate_authority.configure_trust(context)
    return context


def base(server: FakeServer) -> str:
    return f"https://127.0.0.1:{server.server_port}"


def served(server: FakeServer, path: str, name: str = "codeformer.pth", data: bytes = PAYLOAD, **changes):
    """A catalogue entry pointed at the fake server, with the size and sha256 of `data` (and of
    its archive, unless given, no size)."""
    return dataclasses.replace(catalogue_file(name), **{
        "url": base(server) + path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "archive_size": None, **changes})


def files_under(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def fetch(entry, models_dir: Path, trusting: ssl.SSLContext, **options):
    return download(entry, models_dir, ssl_context=trusting, progress=False, **{"timeout": 5.0, **options})


def test_fetches_the_file_checks_it_and_prints_its_sha256(server, trusting, tmp_path, capsys):
    result = fetch(served(server, "/file.bin"), tmp_path, trusting)
    assert result.path == tmp_path / "facerestore_models" / "codeformer.pth"
    assert result.path.read_bytes() == PAYLOAD and result.size == len(PAYLOAD)
    assert result.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert f"sha256 {result.sha256}" in capsys.readouterr().out
    assert files_under(tmp_path) == ["facerestore_models/codeformer.pth"]


def test_a_cut_connection_resumes_with_a_range_request(server, trusting, tmp_path):
    result = fetch(served(server, "/cut.bin"), tmp_path, trusting)
    assert result.path.read_bytes() == PAYLOAD
    assert server.requests == [("/cut.bin", None), ("/cut.bin", f"bytes={len(PAYLOAD) // 2}-")]
    assert files_under(tmp_path) == ["facerestore_models/codeformer.pth"]


def test_a_connection_cut_every_time_fails_and_leaves_nothing(server, trusting, tmp_path):
    with pytest.raises(DownloadError, match=r"codeformer.pth: the connection to 127.0.0.1 was cut on each of 1 "
                                            r"attempt\(s\)"):
        fetch(served(server, "/cut.bin"), tmp_path, trusting, attempts=1)
    assert files_under(tmp_path) == []


def test_a_server_that_ignores_the_range_is_read_from_the_start(server, trusting, tmp_path):
    part = tmp_path / "facerestore_models" / "codeformer.pth.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * 1000)
    assert fetch(served(server, "/no-range.bin"), tmp_path, trusting).path.read_bytes() == PAYLOAD
    assert server.requests == [("/no-range.bin", "bytes=1000-")]
    assert files_under(tmp_path) == ["facerestore_models/codeformer.pth"]


@pytest.mark.parametrize("size", [len(PAYLOAD), None])
def test_a_whole_part_from_an_earlier_run_is_checked_and_kept(server, trusting, tmp_path, size):
    part = tmp_path / "facerestore_models" / "codeformer.pth.part"
    part.parent.mkdir()
    part.write_bytes(PAYLOAD)
    assert fetch(served(server, "/file.bin", size=size), tmp_path, trusting).path.read_bytes() == PAYLOAD
    # Of unknown size, the server's 416 to a Range past the end tells that the part is whole.
    assert server.requests == ([] if size else [("/file.bin", f"bytes={len(PAYLOAD)}-")])
    assert files_under(tmp_path) == ["facerestore_models/codeformer.pth"]


def test_a_wrong_size_keeps_nothing(server, trusting, tmp_path):
    with pytest.raises(DownloadError, match=f"codeformer.pth: got {len(PAYLOAD)} bytes, expected {len(PAYLOAD) + 1} "
                                            r"\(from https://127.0.0.1:\d+/file.bin\)"):
        fetch(served(server, "/file.bin", size=len(PAYLOAD) + 1), tmp_path, trusting)
    assert files_under(tmp_path) == []


def test_a_wrong_hash_keeps_nothing(server, trusting, tmp_path):
    actual = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(DownloadError, match=f"sha256 {actual}, expected {'0' * 64}: the file is not the published "
                                            "one; nothing was kept"):
        fetch(served(server, "/file.bin", sha256="0" * 64), tmp_path, trusting)
    assert files_under(tmp_path) == []


def test_a_404_says_where_to_get_the_file(server, trusting, tmp_path):
    entry = served(server, "/gone.bin")
    folder = tmp_path / "facerestore_models"
    with pytest.raises(DownloadError) as failure:
        fetch(entry, tmp_path, trusting)
    assert str(failure.value) == (f"codeformer.pth: HTTP 404 for {base(server)}/gone.bin: the release moved? "
                                  f"get codeformer.pth from {entry.page} and put it in {folder}")
    assert files_under(tmp_path) == []


def test_a_redirect_to_http_is_refused(server, trusting, tmp_path):
    with pytest.raises(DownloadError, match=f"refused redirect from {base(server)}/to-http to "
                                            f"http://127.0.0.1:{server.server_port}/file.bin: only https is fetched"):
        fetch(served(server, "/to-http"), tmp_path, trusting)
    assert server.requests == [("/to-http", None)]
    assert files_under(tmp_path) == []


def test_an_https_redirect_is_followed(server, trusting, tmp_path):
    assert fetch(served(server, "/to-https"), tmp_path, trusting).path.read_bytes() == PAYLOAD
    assert [path for path, _ in server.requests] == ["/to-https", "/file.bin"]


def test_a_plain_http_address_is_refused_up_front(server, trusting, tmp_path):
    entry = served(server, "/file.bin", url=f"http://127.0.0.1:{server.server_port}/file.bin")
    with pytest.raises(DownloadError, match="is not an https address, so it is not fetched: get codeformer.pth"):
        fetch(entry, tmp_path, trusting)
    assert server.requests == [] and files_under(tmp_path) == []


def test_a_web_page_is_not_kept_as_the_file(server, trusting, tmp_path):
    with pytest.raises(DownloadError, match=r"/page serves a web page, not the file: get codeformer.pth from"):
        fetch(served(server, "/page", size=None, sha256=None), tmp_path, trusting)
    assert files_under(tmp_path) == []


def test_a_stalled_server_fails_after_the_timeout(server, trusting, tmp_path):
    started = time.monotonic()
    with pytest.raises(DownloadError, match="codeformer.pth: no data from 127.0.0.1 for 1 s"):
        fetch(served(server, "/stall.bin"), tmp_path, trusting, timeout=1.0)
    assert time.monotonic() - started < STALL_LIMIT_S - 1
    assert files_under(tmp_path) == []


def test_a_zip_member_is_extracted_and_the_archive_deleted(server, trusting, tmp_path):
    entry = served(server, "/archive.zip", name="FT_Epoch_latest.pt", data=MEMBER_PAYLOAD, archive_size=len(ARCHIVE))
    result = fetch(entry, tmp_path, trusting)
    assert result.path.read_bytes() == MEMBER_PAYLOAD
    assert files_under(tmp_path) == ["ssdiff/FT_Epoch_latest.pt"]


def test_an_archive_without_the_member_keeps_nothing(server, trusting, tmp_path):
    entry = served(server, "/archive.zip", name="FT_Epoch_latest.pt", data=MEMBER_PAYLOAD, member="other.pt")
    with pytest.raises(DownloadError, match="FT_Epoch_latest.pt: the archive .*/archive.zip holds no other.pt"):
        fetch(entry, tmp_path, trusting)
    assert files_under(tmp_path) == []


def test_an_existing_file_is_left_untouched(server, trusting, tmp_path, capsys):
    target = tmp_path / "facerestore_models" / "codeformer.pth"
    target.parent.mkdir()
    target.write_bytes(b"the user's own file")
    assert fetch(served(server, "/file.bin"), tmp_path, trusting) is None
    assert target.read_bytes() == b"the user's own file"
    assert "already there" in capsys.readouterr().out
    assert server.requests == []


def test_a_full_disk_is_refused_before_fetching(server, trusting, tmp_path, monkeypatch):
    monkeypatch.setattr(downloads.shutil, "disk_usage", lambda path: dataclasses.make_dataclass(
        "Usage", ["total", "used", "free"])(10_000_000, 10_000_000, 1000))
    folder = tmp_path / "facerestore_models"
    with pytest.raises(DownloadError, match=re.escape(f"codeformer.pth: not enough space on {folder}: "
                                                      "need 0.3 MB, 0.0 MB free")):
        fetch(served(server, "/file.bin"), tmp_path, trusting)
    assert server.requests == []
    # Of unknown size, the file is refused once the server says its length.
    with pytest.raises(DownloadError, match="not enough space"):
        fetch(served(server, "/file.bin", size=None, sha256=None), tmp_path, trusting)
    assert files_under(tmp_path) == []


class InterruptedProgress:
    """A progress bar whose first update, made right after the first block was written, raises."""
    raises: BaseException = KeyboardInterrupt()

    def __init__(self, **options) -> None:
        pass

    def __enter__(self) -> "InterruptedProgress":
        return self

    def __exit__(self, *exception) -> None:
        pass

    def update(self, count: int) -> None:
        raise self.raises


class DiskFilling(InterruptedProgress):
    raises = OSError(errno.ENOSPC, "No space left on device")


def test_a_disk_that_fills_up_while_writing_keeps_nothing(server, trusting, tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "tqdm", DiskFilling)
    folder = tmp_path / "facerestore_models"
    with pytest.raises(DownloadError, match=re.escape(f"codeformer.pth: not enough space on {folder}: the disk "
                                                      "filled up while writing")):
        fetch(served(server, "/file.bin"), tmp_path, trusting)
    assert files_under(tmp_path) == []


def test_ctrl_c_keeps_the_part_and_the_next_call_resumes_it(server, trusting, tmp_path, monkeypatch, capsys):
    part = tmp_path / "facerestore_models" / "codeformer.pth.part"
    entry = served(server, "/file.bin")
    monkeypatch.setattr(downloads, "tqdm", InterruptedProgress)
    with pytest.raises(KeyboardInterrupt):
        fetch(entry, tmp_path, trusting)
    kept = part.stat().st_size
    assert 0 < kept < len(PAYLOAD) and PAYLOAD.startswith(part.read_bytes())
    assert f"kept {part} ({kept} bytes): the next run resumes it" in capsys.readouterr().err
    monkeypatch.undo()

    assert fetch(entry, tmp_path, trusting).path.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/file.bin", f"bytes={kept}-")
    assert files_under(tmp_path) == ["facerestore_models/codeformer.pth"]


def test_ctrl_c_in_an_archive_keeps_it_and_the_next_call_resumes_it(server, trusting, tmp_path, monkeypatch):
    entry = served(server, "/archive.zip", name="FT_Epoch_latest.pt", data=MEMBER_PAYLOAD)
    monkeypatch.setattr(downloads, "tqdm", InterruptedProgress)
    with pytest.raises(KeyboardInterrupt):
        fetch(entry, tmp_path, trusting)
    assert files_under(tmp_path) == ["ssdiff/archive.zip.part"]
    kept = (tmp_path / "ssdiff" / "archive.zip.part").stat().st_size
    monkeypatch.undo()
    assert fetch(entry, tmp_path, trusting).path.read_bytes() == MEMBER_PAYLOAD
    assert server.requests[-1] == ("/archive.zip", f"bytes={kept}-")
    assert files_under(tmp_path) == ["ssdiff/FT_Epoch_latest.pt"]


def test_the_members_of_one_archive_are_extracted_from_one_fetch(server, trusting, tmp_path, capsys):
    """BOPBTL's 2 GB zip holds the detector and the six global-restoration networks: fetched once."""
    detector = served(server, "/archive.zip", name="FT_Epoch_latest.pt", data=MEMBER_PAYLOAD,
                      archive_size=len(ARCHIVE))
    mapping = served(server, "/archive.zip", name="restoration/mapping_scratch/latest_net_mapping_net.pth",
                     data=SECOND_PAYLOAD, archive_size=len(ARCHIVE))
    summary = download_all([detector, mapping], tmp_path, ssl_context=trusting, progress=False, timeout=5.0)
    out = capsys.readouterr().out
    assert f"2 file(s) to fetch, {downloads.size_text(len(ARCHIVE))}:" in out
    assert "(inside archive.zip, fetched once for its 2 files)" in out
    assert [path for path, _ in server.requests] == ["/archive.zip"]
    assert [result.path.read_bytes() for result in summary.fetched] == [MEMBER_PAYLOAD, SECOND_PAYLOAD]
    assert files_under(tmp_path) == ["ssdiff/FT_Epoch_latest.pt",
                                     "ssdiff/restoration/mapping_scratch/latest_net_mapping_net.pth"]


def test_download_all_lists_the_missing_files_and_goes_on_after_a_failure(server, trusting, tmp_path, capsys):
    present = served(server, "/file.bin", name="resnet34.pt")
    (tmp_path / "ssdiff").mkdir()
    (tmp_path / "ssdiff" / "resnet34.pt").write_bytes(b"present")
    gone = served(server, "/gone.bin", name="parsing_parsenet.pth")
    fetched = served(server, "/file.bin", size=None)
    summary = download_all([present, gone, fetched], tmp_path, ssl_context=trusting, progress=False, timeout=5.0)
    out, err = capsys.readouterr()
    assert f"Missing from {tmp_path}: 2 file(s) to fetch, 0.3 MB + 1 of unknown size:" in out
    assert "facedetection/parsing_parsenet.pth  0.3 MB" in out
    assert "facerestore_models/codeformer.pth  size unknown" in out
    assert "Fetched 1 file(s), 1 already there, 1 FAILED" in out
    assert "FAILED parsing_parsenet.pth: HTTP 404" in err
    assert [result.path.name for result in summary.fetched] == ["codeformer.pth"]
    assert summary.present == [present] and len(summary.failed) == 1
    assert files_under(tmp_path) == ["facerestore_models/codeformer.pth", "ssdiff/resnet34.pt"]


def run_script(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "download_models.py"), *arguments],
                          capture_output=True, text=True, timeout=60)


def test_the_script_lists_the_catalogue_and_what_is_present(tmp_path):
    (tmp_path / "facerestore_models").mkdir()
    (tmp_path / "facerestore_models" / "codeformer.pth").write_bytes(b"present")
    listing = run_script("--list", "--models-dir", str(tmp_path))
    assert listing.returncode == 0, listing.stderr
    header, *lines = listing.stdout.splitlines()
    rows = {line.split()[0]: line for line in lines}
    assert set(rows) == {entry.name for entry in CATALOGUE}
    present = header.index("present")
    assert rows["codeformer.pth"][present:].startswith("yes ") and rows["resnet34.pt"][present:].startswith("no ")
    assert rows["GFPGANv1.4.pth"].startswith("GFPGANv1.4.pth (optional)")
    assert catalogue_file("FT_Epoch_latest.pt").url in rows["FT_Epoch_latest.pt"]


def test_the_script_leaves_present_files_alone_and_refuses_unknown_names(tmp_path):
    (tmp_path / "facerestore_models").mkdir()
    (tmp_path / "facerestore_models" / "codeformer.pth").write_bytes(b"present")
    present = run_script("--models-dir", str(tmp_path), "codeformer.pth")
    assert present.returncode == 0 and "Nothing to fetch" in present.stdout, present.stderr
    unknown = run_script("--models-dir", str(tmp_path), "no_such_file.pth")
    assert unknown.returncode == 2 and "not in the catalogue: no_such_file.pth" in unknown.stderr
