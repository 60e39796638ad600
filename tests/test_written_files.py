"""Files the pack and its runners write through a temporary name (the main job's and the archive
runner's images, the archive manifest, fine-tuned restorers) get the mode any file written in that
folder gets, the umask's, not tempfile's 0o600 (issue 32, part 5)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from harness.archive import Entry, Manifest
from harness.outputs import copy_atomically
from comfyui_ssdiff.models.files import umask_mode


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ordinary_mode(folder: Path) -> int:
    """The mode of a file created the ordinary way in `folder`."""
    probe = folder / "ordinary.txt"
    probe.write_text("x")
    try:
        return mode(probe)
    finally:
        probe.unlink()


def test_umask_mode_is_what_an_ordinary_file_gets(umask, tmp_path):
    assert umask_mode() == 0o666 & ~umask == ordinary_mode(tmp_path)


def test_images_copied_into_place_and_the_archive_manifest_get_the_umasks_mode(umask, tmp_path):
    source = tmp_path / "source.png"
    source.write_bytes(b"\x89PNG not really")
    copy_atomically(source, tmp_path / "out" / "restored.png")
    assert mode(tmp_path / "out" / "restored.png") == ordinary_mode(tmp_path)
    manifest = Manifest(tmp_path / "archive")
    manifest.record(Entry("a.png", 3, "0" * 64, "1" * 64, "done", ["a.png"]))
    assert mode(manifest.path) == ordinary_mode(tmp_path)
    assert not [path.name for path in (tmp_path / "archive").iterdir() if path.name.startswith(".")]


def test_a_saved_fine_tuned_restorer_gets_the_umasks_mode(comfy, pack, umask, models_root):
    path = Path(pack.comfy_adapter.checkpoints.save_new_checkpoint(
        "facerestore_models", f"mode_check_{umask:o}", {"weight": torch.zeros(2)}))
    try:
        assert mode(path) == ordinary_mode(path.parent)
    finally:
        path.unlink()
