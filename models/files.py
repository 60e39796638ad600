"""The kinds of checkpoint the pack reads: the models folders that hold them, the file expected,
where users get it and the keys that recognise it. Plain data (no torch, no ComfyUI): the
ComfyUI adapter resolves and reads the files, the scripts lay out the folders."""
from __future__ import annotations

from dataclasses import dataclass

SSDIFF_FOLDER = "ssdiff"
FACE_DETECTION_FOLDER = "facedetection"
FACE_RESTORE_FOLDER = "facerestore_models"
MODEL_FOLDERS = (SSDIFF_FOLDER, FACE_DETECTION_FOLDER, FACE_RESTORE_FOLDER)
"""models/ssdiff for the method's own files; the other two are the folders ComfyUI's face packs
(ReActor, facerestore_cf) already use, so users' existing files are found."""


@dataclass(frozen=True)
class ModelFile:
    """A kind of checkpoint a loader reads: where it lives, where users get it, and the keys
    every file of the kind holds (their absence names another kind of file)."""
    what: str
    folders: tuple[str, ...]
    expected: str
    source: str
    marker_keys: tuple[str, ...] = ()
