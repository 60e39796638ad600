"""scripts/restore_archive.py on a small folder tree of aged photos (64 px cuts of the bundled
aged sample), with a user's workflow (Scratch Mask and Pseudo Reference, tiny stand-in networks,
10 steps): the tree is mirrored, sources stay as they were, nothing is overwritten, a broken photo
is recorded and the run goes on, Ctrl-C stops after the current photo and the next run resumes
(retrying the photo once fixed), a rerun skips what is done, and a local Ray run writes the same
bytes."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO

ARCHIVE = REPO / "scripts" / "restore_archive.py"
PHOTOS = {"a.png": 11, "family/b.png": 12, "family/1950s/c.jpg": 13}
USER_WORKFLOW = REPO / "tests" / "fixtures" / "archive_workflow_api.json"
"""A user's workflow: Scratch Mask and Pseudo Reference at 10 steps, its output saved as archive/reference."""


def aged_photo(seed: int) -> Image.Image:
    """A 64 px photo cut from the bundled aged sample at a place `seed` picks (ageing anew takes
    seconds a photo; scripts/age_photo.py's seeds make bench/bench_archive.py's photos)."""
    with Image.open(REPO / "assets" / "sample" / "ssdiff_sample_old_photo.png") as sample:
        left, top = (seed * 37) % 192, (seed * 53) % 192
        return sample.convert("RGB").crop((left, top, left + 320, top + 320)).resize((64, 64), Image.LANCZOS)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """a.png, family/b.png, family/1950s/c.jpg, a broken 0_broken.png (first in path order; replaced
    by a good photo after the first run), and files that are not photos of the archive (a text
    file, a hidden folder)."""
    root = tmp_path_factory.mktemp("archive_source")
    for relative, seed in PHOTOS.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        aged_photo(seed).save(root / relative)
    (root / "0_broken.png").write_bytes(b"not a png")
    (root / "notes.txt").write_text("letters from 1952")
    (root / ".thumbnails").mkdir()
    aged_photo(14).save(root / ".thumbnails" / "a.png")
    return root


def restore_archive(source: Path, destination: Path, models_root: Path, *extra: str,
                    wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    """The archive command with the user workflow, on one CPU thread per ComfyUI (as a Ray worker
    of one CPU computes), so that every run makes the same bytes."""
    command = [sys.executable, str(ARCHIVE), str(source), str(destination), "--workflow", str(USER_WORKFLOW),
               "--models-dir", str(models_root), "--threads", "1", *extra]
    if not wait:
        return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


def manifest(destination: Path) -> dict[str, dict]:
    return {entry["file"]: entry for entry in
            json.loads((destination / "ssdiff_archive_manifest.json").read_text())["photos"]}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def outputs_by_photo(destination: Path) -> dict[str, list[bytes]]:
    return {file: [(destination / output).read_bytes() for output in entry["outputs"]]
            for file, entry in manifest(destination).items() if entry["status"] == "done"}


@dataclass
class LocalRuns:
    """Two runs into one destination that already holds a file where an output would go: one that
    meets the broken photo first and is stopped by Ctrl-C once it has recorded it, and the one
    that resumes it after the broken photo was replaced by a good one."""
    destination: Path
    sources_unchanged: bool
    interrupted: subprocess.Popen
    interrupted_output: str
    after_interrupted: dict[str, dict]
    outputs_after_interrupted: dict[str, list[bytes]]
    resumed: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def local_runs(source, models_root, tmp_path_factory) -> LocalRuns:
    destination = tmp_path_factory.mktemp("archive_local") / "restored"
    destination.mkdir()
    (destination / "plumbing_check_a_reference.png").write_bytes(b"an earlier file")
    sources_before = tree_bytes(source)
    running = restore_archive(source, destination, models_root, wait=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and running.poll() is None and \
            not (destination / "ssdiff_archive_manifest.json").exists():
        time.sleep(0.05)
    running.send_signal(signal.SIGINT)
    interrupted_output, _ = running.communicate(timeout=300)
    sources_unchanged = tree_bytes(source) == sources_before
    after_interrupted, outputs_after_interrupted = manifest(destination), outputs_by_photo(destination)
    aged_photo(15).save(source / "0_broken.png")
    resumed = restore_archive(source, destination, models_root)
    return LocalRuns(destination, sources_unchanged, running, interrupted_output, after_interrupted,
                     outputs_after_interrupted, resumed)


def test_a_broken_photo_is_recorded_and_the_run_goes_on(local_runs):
    broken = local_runs.after_interrupted["0_broken.png"]
    assert broken["status"] == "failed" and "LoadImage" in broken["error"] and not broken["outputs"], broken
    assert local_runs.after_interrupted["a.png"]["status"] == "done", "the run stopped at the broken photo"
    assert f"failed: 0_broken.png: {broken['error']}" in local_runs.interrupted_output
    assert local_runs.interrupted.returncode == 1, "a run with a failed photo exits with 1"


def test_ctrl_c_stops_after_the_current_photo_and_the_next_run_resumes_and_retries_the_fixed_photo(local_runs):
    assert "Stopping after the current photo" in local_runs.interrupted_output, local_runs.interrupted_output
    entries = local_runs.after_interrupted
    assert 2 <= len(entries) < 5, entries
    assert not list(local_runs.destination.rglob("*.part")), "a temporary file was left behind"
    done_first = sum(entry["status"] == "done" for entry in entries.values())
    resumed = local_runs.resumed
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{done_first} done before, {4 - done_first} to restore" in resumed.stdout, resumed.stdout
    assert manifest(local_runs.destination)["0_broken.png"]["status"] == "done"
    assert {file: data for file, data in outputs_by_photo(local_runs.destination).items() if file in entries
            and entries[file]["status"] == "done"} == local_runs.outputs_after_interrupted, \
        "a photo done before the interruption was redone"


def test_the_tree_is_mirrored_sources_are_kept_and_nothing_is_overwritten(local_runs):
    assert local_runs.sources_unchanged, "a run changed its source folder"
    destination, entries = local_runs.destination, manifest(local_runs.destination)
    assert sorted(entries) == sorted([*PHOTOS, "0_broken.png"])
    for relative in PHOTOS:
        entry = entries[relative]
        assert entry["status"] == "done" and len(entry["sha256"]) == 64 and entry["workflow_sha256"]
        stem, folder = Path(relative).stem, Path(relative).parent
        assert [Path(output).parent for output in entry["outputs"]] == [folder], entry["outputs"]
        assert Path(entry["outputs"][0]).name.startswith(f"plumbing_check_{stem}_reference")
        with Image.open(destination / entry["outputs"][0]) as image:
            assert image.size == (64, 64)
    assert (destination / "plumbing_check_a_reference.png").read_bytes() == b"an earlier file"
    assert entries["a.png"]["outputs"] == ["plumbing_check_a_reference_1.png"]
    assert not list(destination.rglob("*.part")), "a temporary file was left behind"


def test_a_rerun_skips_everything_done(local_runs, source, models_root):
    before = tree_bytes(local_runs.destination)
    run = restore_archive(source, local_runs.destination, models_root)
    assert run.returncode == 0 and "4 done before, 0 to restore" in run.stdout, run.stdout + run.stderr
    assert tree_bytes(local_runs.destination) == before


def test_on_local_ray_the_outputs_are_the_same_bytes_and_a_rerun_skips_everything(local_runs, source, models_root,
                                                                                   tmp_path):
    pytest.importorskip("ray.data", reason="Ray Data is an optional extra: pip install 'ray[data]'")
    destination = tmp_path / "ray"
    run = restore_archive(source, destination, models_root, "--ray", "--workers", "2")
    assert run.returncode == 0 and "Restored 4, skipped 0 done before, failed 0" in run.stdout, run.stdout + run.stderr
    expected = outputs_by_photo(local_runs.destination)
    assert outputs_by_photo(destination) == expected, "Ray wrote other bytes than the local run"
    rerun = restore_archive(source, destination, models_root, "--ray", "--workers", "2")
    assert rerun.returncode == 0 and "4 done before, 0 to restore" in rerun.stdout, rerun.stdout + rerun.stderr
