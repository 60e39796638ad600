"""Time per photo of the archive runner (one ComfyUI for the whole folder; on all cores, on one
thread, and as a local Ray job of two one-CPU workers) against the same photos each restored by
its own main-job run (one ComfyUI per photo), measured side by side in one run; and whether the
Ray job wrote the same bytes as the one-thread local run.

    .venv/bin/python bench/bench_archive.py [--photos 20] [--size 64] [--workflow W] [--steps 10] [--no-ray] [--no-separate]

The photos are the bundled sample aged with other seeds by scripts/age_photo.py, scaled to
--size px. Missing checkpoints are replaced by tiny random networks in both ways alike.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def aged_photos(folder: Path, count: int, size: int) -> list[Path]:
    spec = importlib.util.spec_from_file_location("age_photo", REPO / "scripts" / "age_photo.py")
    age_photo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(age_photo)
    source = age_photo.source_photo()
    paths = []
    for seed in range(count):
        aged, _ = age_photo.age(source, seed=100 + seed)
        paths.append(folder / f"photo_{seed:03d}.png")
        Image.fromarray(aged).resize((size, size), Image.LANCZOS).save(paths[-1])
    return paths


def outputs(destination: Path) -> dict[str, bytes]:
    return {path.relative_to(destination).as_posix(): path.read_bytes() for path in sorted(destination.rglob("*.png"))}


def timed(command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workflow", type=Path, default=REPO / "tests" / "fixtures" / "archive_workflow_api.json",
                        help="API workflow with one LoadImage (default: Scratch Mask + Pseudo Reference)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-ray", action="store_true", help="leave out the local Ray job")
    parser.add_argument("--no-separate", action="store_true", help="leave out the main-job run per photo")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssdiff-bench-archive-") as work:
        source, no_inputs = Path(work) / "source", Path(work) / "no_inputs"
        source.mkdir()
        no_inputs.mkdir()
        photos = aged_photos(source, options.photos, options.size)
        common = ["--workflow", str(options.workflow), "--steps", str(options.steps)]
        runner = [sys.executable, str(REPO / "scripts" / "restore_archive.py"), str(source)]
        ways = {"archive runner (one ComfyUI, all cores)": timed([*runner, str(Path(work) / "archive"), *common])}
        ways["archive runner, --threads 1"] = timed([*runner, str(Path(work) / "one_thread"), *common, "--threads", "1"])
        if not options.no_ray:
            ways["archive runner, local Ray, 2 workers x 1 CPU"] = timed(
                [*runner, str(Path(work) / "ray"), *common, "--ray", "--workers", "2"])
            same = outputs(Path(work) / "ray") == outputs(Path(work) / "one_thread")
        if not options.no_separate:
            ways["a main-job run per photo"] = sum(
                timed([sys.executable, str(REPO / "scripts" / "run_main_job.py"), "--image", str(photo),
                       "--inputs", str(no_inputs), "--output", str(Path(work) / "separate"), *common])
                for photo in photos)
    print(f"{options.photos} photos of {options.size} px, {options.workflow.name}, {options.steps} steps, CPU\n")
    print("| way | total s | s per photo | vs archive runner |")
    print("|---|---|---|---|")
    first = next(iter(ways.values()))
    for way, seconds in ways.items():
        print(f"| {way} | {seconds:.1f} | {seconds / options.photos:.2f} | {seconds / first:.1f} |")
    if not options.no_ray:
        print(f"\nLocal Ray outputs the same bytes as the one-thread local run: {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
