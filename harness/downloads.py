"""Fetching the catalogue's checkpoints, only when asked: over https only, into `<name>.part`
beside the target, renamed only once its size and (where known) sha256 match; resumed with a
Range request after a cut connection or from an earlier run's .part; never over an existing file;
nothing left behind on a failure (after Ctrl-C the .part stays, for the next run to resume)."""
from __future__ import annotations

import errno
import http.client
import os
import shutil
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Sequence

from tqdm import tqdm

from comfyui_ssdiff.models.files import CatalogueFile

from .catalogue_text import size_text
from .outputs import sha256_of

CHUNK_BYTES = 1 << 16
CUT_CONNECTION = (http.client.IncompleteRead, ConnectionError, ssl.SSLEOFError)
"""What a connection closed in the middle of a response raises (a short body raises nothing)."""


class DownloadError(Exception):
    """A file that was not fetched; the message names it, the address and what to do."""


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    sha256: str
    size: int


@dataclass
class DownloadSummary:
    fetched: list[DownloadResult] = field(default_factory=list)
    present: list[CatalogueFile] = field(default_factory=list)
    """Already in the models folder, left untouched."""
    failed: list[DownloadError] = field(default_factory=list)


def target_path(entry: CatalogueFile, models_dir: Path) -> Path:
    return models_dir / entry.folder / entry.name


def missing_files(entries: Iterable[CatalogueFile], models_dirs: Sequence[Path]) -> list[CatalogueFile]:
    """The entries whose file is in none of the models folders."""
    return [entry for entry in entries if not any(target_path(entry, root).exists() for root in models_dirs)]


def fetch_size(entry: CatalogueFile) -> int | None:
    """The bytes to fetch for the entry: its archive's where it comes inside one."""
    return entry.archive_size if entry.member else entry.size


def archive_part(entry: CatalogueFile, models_dir: Path) -> Path:
    """Where the archive holding the entry is fetched: `<models_dir>/<folder>/<archive>.part`, one
    place for every member of the archive in that folder."""
    return models_dir / entry.folder / f"{_archive_name(entry)}.part"


def download(entry: CatalogueFile, models_dir: Path, *, timeout: float = 30.0, attempts: int = 3,
             ssl_context: ssl.SSLContext | None = None, progress: bool = True,
             keep_archive: bool = False) -> DownloadResult | None:
    """Fetches the entry into `<models_dir>/<folder>/<name>` and prints its sha256; None when the
    file is already there (left untouched). Raises DownloadError, having deleted what it wrote.
    An entry inside an archive extracts its member from the archive at `archive_part`, fetching
    (or resuming) it first; `keep_archive` leaves a whole archive there afterwards, for the next
    member (an archive of the wrong size or no zip is deleted all the same)."""
    target = target_path(entry, models_dir)
    if target.exists():
        print(f"{entry.name}: already there ({target}), left untouched")
        return None
    fix = f"get {entry.name} from {entry.page} and put it in {target.parent}"
    if urllib.parse.urlsplit(entry.url).scheme != "https":
        raise DownloadError(f"{entry.name}: {entry.url} is not an https address, so it is not fetched: {fix}")
    part = target.with_name(f"{target.name}.part")
    fetched = archive_part(entry, models_dir) if entry.member else part
    archive_checked = False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        extracted = (entry.size or 0) if entry.member else 0
        need = (fetch_size(entry) or 0) + extracted - (fetched.stat().st_size if fetched.exists() else 0)
        _check_space(target.parent, need)
        _fetch(entry.url, fetched, fetch_size(entry), fix=fix, timeout=timeout, attempts=attempts,
               ssl_context=ssl_context, progress=progress)
        if entry.member:
            _check_size(fetched, entry.archive_size, entry.url)
            _extract(fetched, entry.member, part, entry.url)
            archive_checked = True
            if not keep_archive:
                fetched.unlink()
        result = _install(part, target, entry)
    except KeyboardInterrupt:
        if entry.member:
            part.unlink(missing_ok=True)
        if fetched.exists():
            print(f"{entry.name}: interrupted; kept {fetched} ({fetched.stat().st_size} bytes): "
                  "the next run resumes it", file=sys.stderr)
        raise
    except BaseException as error:
        part.unlink(missing_ok=True)
        if not (keep_archive and archive_checked):
            fetched.unlink(missing_ok=True)
        if isinstance(error, DownloadError):
            raise DownloadError(f"{entry.name}: {error}") from None
        if isinstance(error, OSError):
            raise DownloadError(f"{entry.name}: cannot write into {target.parent} ({error}); nothing was kept") \
                from None
        raise
    print(f"{entry.name}: fetched {result.size} bytes into {result.path}, sha256 {result.sha256}")
    return result


def download_all(entries: Iterable[CatalogueFile], models_dir: Path, *, timeout: float = 30.0, attempts: int = 3,
                 ssl_context: ssl.SSLContext | None = None, progress: bool = True) -> DownloadSummary:
    """Lists what is missing from `models_dir` and its total size, fetches each file (going on
    after a failure) and prints a summary."""
    entries = list(entries)
    missing = missing_files(entries, [models_dir])
    summary = DownloadSummary(present=[entry for entry in entries if entry not in missing])
    if not missing:
        print(f"Nothing to fetch: {len(entries)} file(s) already in {models_dir}.")
        return summary
    sizes = [fetch_size(entry) for entry in missing]
    archives = {entry.url: size for entry, size in zip(missing, sizes) if entry.member}
    once = [size for entry, size in zip(missing, sizes) if not entry.member] + list(archives.values())
    known = [size for size in once if size is not None]
    unknown = f"{len(once) - len(known)} of unknown size"
    total = (f"{size_text(sum(known))}{f' + {unknown}' if len(known) < len(once) else ''}" if known else unknown)
    print(f"Missing from {models_dir}: {len(missing)} file(s) to fetch, {total}:")
    for entry, size in zip(missing, sizes):
        members = sum(other.url == entry.url for other in missing if other.member)
        shared = f", fetched once for its {members} files" if members > 1 else ""
        inside = f" (inside {_archive_name(entry)}{shared})" if entry.member else ""
        print(f"  {entry.folder}/{entry.name}  {size_text(size)}{inside}  {entry.url}")
    for index, entry in enumerate(missing):
        later = any(other.member and other.url == entry.url and other.folder == entry.folder
                    for other in missing[index + 1:])
        try:
            result = download(entry, models_dir, timeout=timeout, attempts=attempts, ssl_context=ssl_context,
                              progress=progress, keep_archive=bool(entry.member) and later)
        except DownloadError as error:
            print(f"FAILED {error}", file=sys.stderr)
            summary.failed.append(error)
            continue
        if result is None:
            summary.present.append(entry)
        else:
            summary.fetched.append(result)
    failed = f", {len(summary.failed)} FAILED (see above)" if summary.failed else ""
    print(f"Fetched {len(summary.fetched)} file(s), {len(summary.present)} already there{failed}.")
    return summary


def _archive_name(entry: CatalogueFile) -> str:
    return PurePosixPath(urllib.parse.urlsplit(entry.url).path).name


def _check_space(folder: Path, need: int) -> None:
    free = shutil.disk_usage(folder).free
    if need > free:
        raise DownloadError(f"not enough space on {folder}: need {size_text(need)}, {size_text(free)} free")


@contextmanager
def _full_disk_reported(folder: Path) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise DownloadError(f"not enough space on {folder}: the disk filled up while writing; free some space "
                            "and run again") from None


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to https addresses (release assets live on another host) and no others."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme != "https":
            fp.close()
            raise DownloadError(f"refused redirect from {req.full_url} to {newurl}: only https is fetched")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, part: Path, size: int | None, *, fix: str, timeout: float, attempts: int,
           ssl_context: ssl.SSLContext | None, progress: bool) -> None:
    """Fetches `url` into `part`, continuing what `part` holds with a Range request, again after
    each cut connection, `attempts` requests in all."""
    host = urllib.parse.urlsplit(url).hostname
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ssl_context), _HttpsOnlyRedirects)
    for _ in range(attempts):
        start = part.stat().st_size if part.exists() else 0
        if size is not None and start >= size:
            if start == size:
                return
            part.unlink()
            start = 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
        try:
            with opener.open(request, timeout=timeout) as response:
                start, total = _body_range(response, start, url)
                if response.headers.get_content_type() == "text/html":
                    raise DownloadError(f"{url} serves a web page, not the file: {fix}")
                if total is not None:
                    _check_space(part.parent, total - start)
                with _full_disk_reported(part.parent), part.open("ab" if start else "wb") as out, \
                        tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=part.name.removesuffix(".part"), disable=not progress) as bar:
                    while chunk := response.read(CHUNK_BYTES):
                        out.write(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 416 and start:
                if error.headers.get("Content-Range", "") == f"bytes */{start}":
                    return
                part.unlink()
                continue
            moved = "the release moved? " if error.code == 404 else ""
            raise DownloadError(f"HTTP {error.code} for {url}: {moved}{fix}") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise DownloadError(f"no data from {host} for {timeout:g} s: try again later") from None
            raise DownloadError(f"cannot reach {host} ({error.reason}): check the connection, or {fix}") from None
        except TimeoutError:
            raise DownloadError(f"no data from {host} for {timeout:g} s: try again later") from None
        except CUT_CONNECTION:
            continue
        if total is None or part.stat().st_size == total:
            return
    raise DownloadError(f"the connection to {host} was cut on each of {attempts} attempt(s): try again later, "
                        f"or {fix}")


def _body_range(response: http.client.HTTPResponse, start: int, url: str) -> tuple[int, int | None]:
    """Where the response's body starts in the file (0 when a server ignored the Range), and the
    file's size where the response says it."""
    length = response.headers.get("Content-Length")
    if response.status != 206:
        return 0, int(length) if length else None
    unit, _, spec = response.headers.get("Content-Range", "").partition(" ")
    first, _, total = spec.partition("/")
    if unit != "bytes" or first.partition("-")[0] != str(start):
        raise DownloadError(f"{url} answered a request for bytes {start}- with bytes {spec or '(unsaid)'}")
    return start, int(total) if total.isdigit() else None


def _check_size(path: Path, size: int | None, url: str) -> None:
    got = path.stat().st_size
    if size is not None and got != size:
        raise DownloadError(f"got {got} bytes, expected {size} (from {url}): the file is not the published one; "
                            "nothing was kept")


def _extract(archive: Path, member: str, part: Path, url: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zipped, zipped.open(member) as source, \
                _full_disk_reported(part.parent), part.open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK_BYTES)
    except KeyError:
        raise DownloadError(f"the archive {url} holds no {member}: the release changed; nothing was kept") from None
    except zipfile.BadZipFile as error:
        raise DownloadError(f"{url} is not a readable zip archive ({error}); nothing was kept") from None


def _install(part: Path, target: Path, entry: CatalogueFile) -> DownloadResult:
    """Checks the size and sha256 of `part`, then renames it to `target`, which must not exist."""
    _check_size(part, entry.size, entry.url)
    digest = sha256_of(part)
    if entry.sha256 is not None and digest != entry.sha256.lower():
        raise DownloadError(f"sha256 {digest}, expected {entry.sha256}: the file is not the published one; "
                            "nothing was kept")
    appeared = DownloadError(f"{target} appeared while it was fetched: left it untouched; nothing was kept")
    try:
        os.link(part, target)
    except FileExistsError:
        raise appeared from None
    except OSError:
        if target.exists():  # a file system without hard links: check, then rename
            raise appeared from None
        os.replace(part, target)
    else:
        part.unlink()
    return DownloadResult(target, digest, target.stat().st_size)
