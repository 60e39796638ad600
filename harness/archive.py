"""A folder of photos restored with one API workflow: a destination folder that mirrors the
source tree, one ComfyUI for the whole run (or one per Ray actor), and a manifest that makes a
rerun skip what is done and retry what failed. Sources are only read; an output never replaces a
file; the manifest is rewritten atomically after every photo."""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from .headless import ComfyServer
from comfyui_ssdiff.models.files import umask_mode

from .outputs import copy_atomically, output_path, sha256_of

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
"""What ComfyUI's LoadImage (PIL) reads among the formats scans come in."""
MANIFEST_NAME = "ssdiff_archive_manifest.json"


def workflow_sha256(prompt: dict) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Photo:
    relative: str
    """Its path under the source folder, with forward slashes."""
    size: int
    sha256: str


def find_photos(source: Path) -> list[Photo]:
    """Every photo under `source`, recursively, hidden files and folders left out, in path order."""
    photos = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES and \
                not any(part.startswith(".") for part in relative.parts):
            photos.append(Photo(relative.as_posix(), path.stat().st_size, sha256_of(path)))
    return photos


@dataclass
class Entry:
    """What the manifest holds of one source photo."""
    file: str
    size: int
    sha256: str
    workflow_sha256: str
    status: str
    """'done' or 'failed'."""
    outputs: list[str] = field(default_factory=list)
    """Paths under the destination folder."""
    error: str | None = None
    seconds: float = 0.0


class Manifest:
    """`<destination>/ssdiff_archive_manifest.json`: one entry per source photo."""

    def __init__(self, destination: Path):
        self.destination = destination
        self.path = destination / MANIFEST_NAME
        self.entries: dict[str, Entry] = {}
        if self.path.exists():
            for entry in json.loads(self.path.read_text())["photos"]:
                self.entries[entry["file"]] = Entry(**entry)

    def is_done(self, photo: Photo, workflow: str) -> bool:
        """Restored before from the same bytes with the same workflow, and every output still there."""
        entry = self.entries.get(photo.relative)
        return (entry is not None and entry.status == "done" and entry.sha256 == photo.sha256
                and entry.workflow_sha256 == workflow and entry.outputs != []
                and all((self.destination / output).exists() for output in entry.outputs))

    def record(self, entry: Entry) -> None:
        self.entries[entry.file] = entry
        self.destination.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.destination, prefix=f".{MANIFEST_NAME}.", suffix=".part")
        os.fchmod(handle, umask_mode())
        with os.fdopen(handle, "w") as stream:
            json.dump({"photos": [asdict(entry) for entry in self.entries.values()]}, stream, indent=1)
        os.replace(temporary, self.path)


@dataclass(frozen=True)
class RunSettings:
    """Everything a ComfyUI that restores photos of the run needs; picklable, for Ray actors."""
    host: Path
    prompt: dict
    photo_node: str
    source: Path
    destination: Path
    models_root: Path | None = None
    output_prefix: str = ""
    """Put before every output name: 'plumbing_check_' when stand-in networks run."""
    timeout: float = 3600.0
    threads: int | None = None
    """CPU threads of each ComfyUI (None: torch's default). CPU convolutions sum in another order on
    another thread count, so outputs are the same bytes wherever they are made only at the same count."""


def photo_node_of(prompt: dict, node_id: str | None) -> str:
    """The LoadImage node the photos go into: `node_id`, or the workflow's only LoadImage."""
    loads = [key for key, node in prompt.items() if node["class_type"] == "LoadImage"]
    if node_id is not None:
        if node_id not in loads:
            raise ValueError(f"node {node_id} is not a LoadImage node of the workflow (its LoadImage nodes: "
                             f"{', '.join(loads) or 'none'})")
        return node_id
    if len(loads) != 1:
        raise ValueError(f"the workflow has {len(loads)} LoadImage nodes ({', '.join(loads)}): say which one "
                         "takes the photos with --photo-node")
    return loads[0]


def _error_text(history_entry: dict) -> str:
    for kind, message in history_entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{message.get('node_type')}: {message.get('exception_message', '').strip()}"
    return "the workflow failed without an error message"


class PhotoRestorer:
    """One ComfyUI server for a whole run: each photo is copied into its input folder under a name
    made of its content hash (the same in every run, so its outputs are the same bytes), the
    workflow run on it, and its outputs copied atomically beside where the photo sits in the
    source tree, as `<stem>_<SaveImage prefix>[_<n>].png`."""

    def __init__(self, settings: RunSettings, work: Path):
        self.settings = settings
        self.server = ComfyServer(settings.host, work, settings.models_root, threads=settings.threads).start()

    def close(self) -> None:
        self.server.stop()

    def restore(self, photo: Photo, workflow: str) -> Entry:
        started = time.monotonic()
        entry = Entry(photo.relative, photo.size, photo.sha256, workflow, "failed")
        suffix = Path(photo.relative).suffix.lower()
        input_name = f"archive_{photo.sha256[:24]}{suffix}"
        try:
            shutil.copyfile(self.settings.source / photo.relative, self.server.input_dir / input_name)
            prompt = copy.deepcopy(self.settings.prompt)
            prompt[self.settings.photo_node]["inputs"]["image"] = input_name
            response = self.server.queue(prompt)
            if response.status_code != 200:
                entry.error = f"ComfyUI refused the workflow: {response.text[:1000]}"
                return entry
            history = self.server.wait_for(response.json()["prompt_id"], self.settings.timeout, raise_on_error=False)
            if history["status"].get("status_str") == "error":
                entry.error = _error_text(history)
                return entry
            entry.outputs = self._keep_outputs(photo, prompt, history)
            entry.status = "done" if entry.outputs else "failed"
            entry.error = None if entry.outputs else "the workflow saved no image"
        except (OSError, TimeoutError, RuntimeError) as error:
            entry.error = f"{type(error).__name__}: {error}"
        finally:
            (self.server.input_dir / input_name).unlink(missing_ok=True)
            entry.seconds = round(time.monotonic() - started, 3)
        return entry

    def _keep_outputs(self, photo: Photo, prompt: dict, history: dict) -> list[str]:
        relative = Path(photo.relative)
        kept = []
        for node_id, node_output in history.get("outputs", {}).items():
            prefix = Path(str(prompt[node_id]["inputs"].get("filename_prefix", "output"))).name
            saved = [image for image in node_output.get("images", []) if image.get("type") == "output"]
            for index, image in enumerate(saved):
                produced = self.server.output_dir / image.get("subfolder", "") / image["filename"]
                name = f"{self.settings.output_prefix}{relative.stem}_{prefix}{f'_{index}' if index else ''}.png"
                target = output_path(self.settings.destination / relative.parent / name, overwrite=False, inputs=set())
                copy_atomically(produced, target)
                produced.unlink()
                kept.append(target.relative_to(self.settings.destination).as_posix())
        return kept


class StopAfterCurrent:
    """While active, the first Ctrl-C asks the run to stop after the photo in progress (the
    manifest stays consistent); a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False

    def __enter__(self) -> "StopAfterCurrent":
        self.previous = signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, *_) -> None:
        self.requested = True
        print("\nStopping after the current photo (Ctrl-C again to stop now) ...", flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *_) -> None:
        signal.signal(signal.SIGINT, self.previous)


def restore_locally(settings: RunSettings, pending: list[Photo], workflow: str, work: Path,
                    stop: StopAfterCurrent) -> Iterator[Entry]:
    """Each pending photo through one ComfyUI, until done or a stop is requested."""
    restorer = PhotoRestorer(settings, work)
    try:
        for photo in pending:
            if stop.requested:
                return
            yield restorer.restore(photo, workflow)
    finally:
        restorer.close()


def pending_photos(photos: list[Photo], manifest: Manifest, workflow: str) -> tuple[list[Photo], int]:
    """The photos still to restore (new, changed, failed, or with an output gone) and how many are done."""
    pending = [photo for photo in photos if not manifest.is_done(photo, workflow)]
    return pending, len(photos) - len(pending)
