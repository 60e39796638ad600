"""Where a run's outputs go: never over an input photo, over an earlier output only when asked,
and never half-written; and a file's sha256."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from comfyui_ssdiff.models.files import umask_mode


def output_path(path: Path, overwrite: bool, inputs: set[Path]) -> Path:
    """`path`, or the first free `<stem>_<n><suffix>` beside it when `path` exists and may not be
    replaced: an earlier output unless `overwrite`, one of the job's input images never."""
    if not path.exists() or (overwrite and path.resolve() not in inputs):
        return path
    for index in range(1, 10000):
        candidate = path.with_name(f"{path.stem}_{index}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(path)


def copy_atomically(source: Path, target: Path) -> None:
    """Writes a temporary file beside the target, then renames it: no half-written image; the
    image gets the mode any file written there gets (the umask's)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.fchmod(handle, umask_mode())
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
