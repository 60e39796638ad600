"""The headless runner of the README's main job: on a fresh machine it finds the bundled photo's
face with MTCNN and restores it with stand-ins; it never overwrites an input photo or, unless
asked, an earlier output, and writes every output atomically."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import HOST, REPO, require_host
from harness.outputs import copy_atomically

INVERT_WORKFLOW = {"1": {"class_type": "LoadImage", "inputs": {"image": "replaced by --image"}},
                   "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                   "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "job"}}}
FIRST_OUTPUT = "job_00001_.png"


def run_job(tmp_path: Path, photo: Path, output: Path, *extra: str) -> None:
    require_host()
    workflow = tmp_path / "invert_api.json"
    workflow.write_text(json.dumps(INVERT_WORKFLOW))
    inputs = tmp_path / "no_other_inputs"
    inputs.mkdir(exist_ok=True)
    subprocess.run([sys.executable, str(REPO / "scripts" / "run_main_job.py"), "--workflow", str(workflow),
                    "--image", str(photo), "--inputs", str(inputs), "--output", str(output), "--host", str(HOST),
                    *extra], check=True, capture_output=True, timeout=300)


def test_on_a_fresh_machine_the_main_job_finds_the_bundled_photos_face_and_pastes_it_back(tmp_path):
    require_host()
    output, empty_models = tmp_path / "output", tmp_path / "no_models"
    empty_models.mkdir()
    job = subprocess.run([sys.executable, str(REPO / "scripts" / "run_main_job.py"), "--steps", "1", "--output",
                          str(output), "--models-dir", str(empty_models), "--host", str(HOST)],
                         capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert ("detection_Resnet50_Final.pth is missing: using MTCNN (built in, no download) instead (real weights)"
            in job.stdout)
    for name in ("FT_Epoch_latest.pt", "codeformer.pth", "resnet34.pt", "iddpm_ffhq512_ema500000.pth",
                 "photo_image.pt"):
        assert f"{name} is missing: using a tiny RANDOM network" in job.stdout
    assert ("FT_Epoch_latest.pt is missing: the whole photo's damage is filled where its own shipped scratch mask "
            "ssdiff_sample_old_photo_scratches.png marks it (no download)") in job.stdout
    restored, = output.glob("plumbing_check_restored_photo_*.png")
    original = pixels(REPO / "assets/sample/ssdiff_sample_old_photo.png").astype(int)
    changed = np.abs(pixels(restored).astype(int) - original).max(-1) > 1
    # MTCNN's box of the face: x 175-263, y 65-174; the aligned crop reaches beyond it. Outside it
    # the photo changed only where its shipped scratch mask (grown by Fill Damage's 2 px) marks
    # damage, and there the bright scratches are filled darker.
    face = np.zeros_like(changed)
    face[:240, 100:340] = True
    rows, columns = np.nonzero(changed & face)
    assert (changed & face).sum() > 10_000
    assert abs(columns.mean() - 219) < 20 and abs(rows.mean() - 120) < 25
    scratches = pixels(REPO / "assets/sample/ssdiff_sample_old_photo_scratches.png")[..., 0] > 127
    grown = cv2.dilate(scratches.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert not (changed & ~face & ~grown).any()
    background = scratches & ~face
    assert (changed & background).sum() > 0.8 * background.sum() > 1000
    lightness = pixels(restored).astype(int).mean(-1)
    assert lightness[background].mean() < original.mean(-1)[background].mean() - 30


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def is_inverse(output: np.ndarray, photo: np.ndarray) -> bool:
    """SaveImage truncates 255 * (1 - x), so a level may come out one lower."""
    return output.shape == photo.shape and np.abs(output.astype(int) - (255 - photo.astype(int))).max() <= 1


def test_outputs_never_replace_an_input_photo_and_replace_earlier_outputs_only_when_asked(tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    rng = np.random.default_rng(0)
    earlier = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    Image.fromarray(earlier).save(output / FIRST_OUTPUT)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(photo)

    run_job(tmp_path, photo, output)
    assert np.array_equal(pixels(output / FIRST_OUTPUT), earlier), "an earlier output was overwritten"
    assert is_inverse(pixels(output / "job_00001__1.png"), pixels(photo))

    # The photo sits where the output would go; even with --overwrite it is kept.
    photo_in_output = output / FIRST_OUTPUT
    original = pixels(photo_in_output)
    run_job(tmp_path, photo_in_output, output, "--overwrite")
    assert np.array_equal(pixels(photo_in_output), original), "the input photo was overwritten"
    assert is_inverse(pixels(output / "job_00001__2.png"), original)
    assert not list(output.glob(".*.part"))


def test_an_interrupted_copy_leaves_the_target_as_it_was_and_no_partial_file(tmp_path, monkeypatch):
    source, target = tmp_path / "new.png", tmp_path / "out" / "restored.png"
    source.write_bytes(b"new image " * 1000)
    target.parent.mkdir()
    target.write_bytes(b"earlier image")

    def interrupted(from_path, to_path):
        Path(to_path).write_bytes(Path(from_path).read_bytes()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr("harness.outputs.shutil.copyfile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        copy_atomically(source, target)
    assert target.read_bytes() == b"earlier image"
    assert sorted(path.name for path in target.parent.iterdir()) == ["restored.png"]
    monkeypatch.undo()
    copy_atomically(source, target)
    assert target.read_bytes() == source.read_bytes()
